"""The OAuth2 demo provider: refresh-token grant, protected resource, revocation, expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from reconciler.simulator import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


@pytest.fixture(scope="module")
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url("oauthdemo")) as client:
        yield client


def refresh(http: httpx.Client, token: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        **extra,
    }
    return http.post("/oauth/token", data=form)


def me(http: httpx.Client, access: str) -> httpx.Response:
    return http.get("/v1/me", headers={"Authorization": f"Bearer {access}"})


def test_refresh_grant_issues_a_working_access_token(http: httpx.Client) -> None:
    response = refresh(http, "rt-good", scope="read write")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] == "rt-good"
    assert body["scope"] == "read write"
    assert response.headers["cache-control"] == "no-store"
    profile = me(http, body["access_token"])
    assert profile.status_code == 200
    assert profile.json()["email"] == "demo@example.com"


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [
        ("rt-revoked", 400, "invalid_grant"),
        ("rt-invalid", 400, "invalid_grant"),
        ("rt-denied", 400, "access_denied"),
        ("rt-ratelimited", 429, "slow_down"),
        ("rt-outage", 500, "server_error"),
    ],
)
def test_refresh_refusals(http: httpx.Client, token: str, status: int, error: str) -> None:
    response = refresh(http, token)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_client_credentials_and_grant_type_are_checked(http: httpx.Client) -> None:
    no_client = http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"}
    )
    assert no_client.status_code == 401
    assert no_client.json()["error"] == "invalid_client"
    wrong_grant = refresh(http, "rt-good", grant_type="password")
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def test_client_may_authenticate_with_basic(http: httpx.Client) -> None:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "rt-basic"},
        auth=("demo-client", "demo-secret"),
    )
    assert response.status_code == 200


def test_shortlived_access_token_expires(http: httpx.Client) -> None:
    body = refresh(http, "rt-shortlived").json()
    assert body["expires_in"] == 1
    assert me(http, body["access_token"]).status_code == 200
    time.sleep(1.05)
    expired = me(http, body["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_token"
    assert refresh(http, "rt-shortlived").status_code == 200  # refreshing works again


def test_unknown_or_missing_access_token_is_refused(http: httpx.Client) -> None:
    assert me(http, "not-issued").json()["error"] == "invalid_token"
    assert http.get("/v1/me").status_code == 401


def test_revoking_the_refresh_token_kills_its_grant_and_access(
    sim: Simulator, http: httpx.Client
) -> None:
    access = refresh(http, "rt-to-revoke").json()["access_token"]
    sim.revoke("rt-to-revoke")
    assert refresh(http, "rt-to-revoke").json()["error"] == "invalid_grant"
    assert me(http, access).status_code == 401
    sim.restore("rt-to-revoke")
    assert refresh(http, "rt-to-revoke").status_code == 200
