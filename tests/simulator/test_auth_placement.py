"""A key sent in the wrong place gets the provider's missing-auth answer, never success."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from reconciler.simulator import Simulator

KEY = "good-key-123"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def get(sim: Simulator, http: httpx.Client) -> Callable[..., httpx.Response]:
    def send(provider: str, path: str, **kwargs: Any) -> httpx.Response:
        return http.get(sim.base_url(provider) + path, **kwargs)

    return send


def test_stripe_needs_bearer(get: Callable[..., httpx.Response]) -> None:
    raw = get("stripe", "/v1/account", headers={"Authorization": "sk_test_" + KEY})
    assert raw.status_code == 401
    assert "did not provide an API key" in raw.json()["error"]["message"]
    assert get("stripe", "/v1/account", params={"key": KEY}).status_code == 401


def test_stripe_also_takes_basic_auth_like_the_real_api(get: Callable[..., httpx.Response]) -> None:
    basic = base64.b64encode(b"sk_test_" + KEY.encode() + b":").decode()
    response = get("stripe", "/v1/account", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_quo_refuses_bearer(get: Callable[..., httpx.Response]) -> None:
    bearer = get("quo", "/v1/phone-numbers", headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 401
    assert bearer.json()["message"] == "Missing or invalid API key"
    raw = get("quo", "/v1/phone-numbers", headers={"Authorization": KEY})
    assert raw.status_code == 200


def test_anthropic_takes_x_api_key_or_bearer_but_not_a_bare_key(
    get: Callable[..., httpx.Response],
) -> None:
    version = {"anthropic-version": "2023-06-01"}
    for auth in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert get("anthropic", "/v1/models", headers={**auth, **version}).status_code == 200
    for wrong in ({"Authorization": KEY}, {"api-key": KEY}):
        response = get("anthropic", "/v1/models", headers={**wrong, **version})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    in_query = get("anthropic", "/v1/models", headers=version, params={"api_key": KEY})
    assert in_query.status_code == 401


def test_anthropic_needs_the_version_header(get: Callable[..., httpx.Response]) -> None:
    response = get("anthropic", "/v1/models", headers={"x-api-key": KEY})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "anthropic-version: header is required"


def test_postmark_needs_its_server_token_header(get: Callable[..., httpx.Response]) -> None:
    for headers in ({"X-Postmark-Account-Token": KEY}, {"Authorization": f"Bearer {KEY}"}):
        response = get("postmark", "/server", headers=headers)
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == 10


def test_mapbox_needs_the_query_parameter(get: Callable[..., httpx.Response]) -> None:
    response = get("mapbox", "/tokens/v2", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 401
    assert response.json() == {"message": "Not Authorized - No Token"}


def test_google_needs_the_key_parameter(get: Callable[..., httpx.Response]) -> None:
    response = get(
        "google_maps",
        "/maps/api/geocode/json",
        params={"address": "x", "apiKey": "AIza" + KEY},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "REQUEST_DENIED"
    assert "must use an API key" in response.json()["error_message"]


def test_geoapify_needs_apikey_spelled_its_way(get: Callable[..., httpx.Response]) -> None:
    response = get("geoapify", "/v1/ipinfo", params={"key": KEY})
    assert response.status_code == 401
    assert get("geoapify", "/v1/ipinfo", params={"apiKey": KEY}).status_code == 200
