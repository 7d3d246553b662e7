"""Each provider's answer to each kind of key, as a truth table (keyconv + providers.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from reconciler.simulator import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@dataclass(frozen=True)
class Probe:
    """How to send a key the way each provider's health check does."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def probe(provider: str, key: str) -> Probe:
    return {
        "stripe": Probe("/v1/account", {"Authorization": f"Bearer {key}"}),
        "postmark": Probe(
            "/server", {"X-Postmark-Server-Token": key, "Accept": "application/json"}
        ),
        "mapbox": Probe("/tokens/v2", params={"access_token": key}),
        "google_maps": Probe(
            "/maps/api/geocode/json", params={"address": "1600 Amphitheatre", "key": key}
        ),
        "geoapify": Probe("/v1/ipinfo", params={"apiKey": key}),
        "anthropic": Probe(
            "/v1/models", {"x-api-key": key, "anthropic-version": "2023-06-01"}, {"limit": "1"}
        ),
        "quo": Probe("/v1/phone-numbers", {"Authorization": key}),
    }[provider]


def call(http: httpx.Client, sim: Simulator, provider: str, key: str) -> httpx.Response:
    p = probe(provider, key)
    return http.get(sim.base_url(provider) + p.path, headers=p.headers, params=p.params)


def dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[part]
    return body


# provider, key, HTTP status, {dotted.path: expected value} in the JSON body
TABLE: list[tuple[str, str, int, dict[str, Any]]] = [
    ("stripe", "sk_test_good", 200, {"object": "account", "charges_enabled": True}),
    ("stripe", "sk_test_invalid", 401, {"error.type": "invalid_request_error"}),
    ("stripe", "sk_test_expired", 401, {"error.code": "api_key_expired"}),
    ("stripe", "rk_test_forbidden", 403, {"error.type": "invalid_request_error"}),
    ("stripe", "sk_test_ratelimited", 429, {"error.code": "rate_limit"}),
    ("stripe", "sk_test_outage", 500, {"error.type": "api_error"}),
    ("stripe", "sk_test_overloaded", 503, {"error.type": "api_error"}),
    ("postmark", "pm-good", 200, {"Name": "Simulated Server", "DeliveryType": "Live"}),
    ("postmark", "pm-sandbox", 200, {"DeliveryType": "Sandbox"}),
    ("postmark", "pm-invalid", 401, {"ErrorCode": 10}),
    ("postmark", "pm-forbidden", 403, {"ErrorCode": 10}),
    ("postmark", "pm-ratelimited", 429, {"ErrorCode": 429}),
    ("postmark", "pm-outage", 500, {}),
    ("mapbox", "pk.good", 200, {"code": "TokenValid", "token.usage": "pk"}),
    ("mapbox", "pk.invalid", 200, {"code": "TokenInvalid"}),
    ("mapbox", "pk.malformed", 200, {"code": "TokenMalformed"}),
    ("mapbox", "pk.expired", 200, {"code": "TokenExpired"}),
    ("mapbox", "pk.revoked", 200, {"code": "TokenRevoked"}),
    ("mapbox", "pk.forbidden", 403, {"message": "Forbidden"}),
    ("mapbox", "pk.ratelimited", 429, {}),
    ("mapbox", "pk.outage", 500, {}),
    ("google_maps", "AIzaGood", 200, {"status": "OK"}),
    ("google_maps", "AIzaInvalid", 200, {"status": "REQUEST_DENIED"}),
    ("google_maps", "AIza-invalid", 200, {"status": "REQUEST_DENIED"}),
    ("google_maps", "AIza-ratelimited", 200, {"status": "OVER_QUERY_LIMIT"}),
    ("google_maps", "AIza-dailylimit", 200, {"status": "OVER_DAILY_LIMIT"}),
    ("google_maps", "AIza-unknownerror", 200, {"status": "UNKNOWN_ERROR"}),
    ("geoapify", "geo-good", 200, {"country.iso_code": "US", "ip": "127.0.0.1"}),
    ("geoapify", "geo-invalid", 401, {"statusCode": 401, "message": "Invalid apiKey"}),
    ("geoapify", "geo-ratelimited", 429, {"statusCode": 429}),
    ("geoapify", "geo-outage", 500, {"statusCode": 500}),
    ("anthropic", "sk-ant-good", 200, {"has_more": True}),
    ("anthropic", "sk-ant-invalid", 401, {"type": "error", "error.type": "authentication_error"}),
    ("anthropic", "sk-ant-forbidden", 403, {"error.type": "permission_error"}),
    ("anthropic", "sk-ant-ratelimited", 429, {"error.type": "rate_limit_error"}),
    ("anthropic", "sk-ant-overloaded", 529, {"error.type": "overloaded_error"}),
    ("anthropic", "sk-ant-outage", 500, {"error.type": "api_error"}),
    ("quo", "quo-good", 200, {}),
    ("quo", "quo-invalid", 401, {"status": 401, "message": "Missing or invalid API key"}),
    ("quo", "quo-ratelimited", 429, {"status": 429}),
    ("quo", "quo-outage", 500, {"status": 500}),
]


@pytest.mark.parametrize(("provider", "key", "status", "fields"), TABLE)
def test_answer(
    http: httpx.Client, sim: Simulator, provider: str, key: str, status: int, fields: dict
) -> None:
    response = call(http, sim, provider, key)
    assert response.status_code == status
    if fields:
        body = response.json()
        for dotted, expected in fields.items():
            assert dig(body, dotted) == expected


@pytest.mark.parametrize(
    "provider", ["stripe", "postmark", "mapbox", "google_maps", "geoapify", "anthropic", "quo"]
)
def test_network_block_is_html_without_an_error_code(
    http: httpx.Client, sim: Simulator, provider: str
) -> None:
    response = call(http, sim, provider, "k-netblock")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "ErrorCode" not in response.text


def test_stripe_success_derives_a_stable_account_from_the_key(
    http: httpx.Client, sim: Simulator
) -> None:
    first = call(http, sim, "stripe", "sk_live_one").json()
    again = call(http, sim, "stripe", "sk_live_one").json()
    other = call(http, sim, "stripe", "sk_test_two").json()
    assert first["id"].startswith("acct_")
    assert first["id"] == again["id"] != other["id"]
    assert first["default_currency"] == "usd"
    assert first["details_submitted"] is True


def test_stripe_masks_the_key_it_echoes(http: httpx.Client, sim: Simulator) -> None:
    key = "sk_test_invalid_4242abcdWXYZ"
    response = call(http, sim, "stripe", key)
    message = response.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: sk_test_****")
    assert message.endswith("WXYZ")
    assert key not in response.text


def test_stripe_headers(http: httpx.Client, sim: Simulator) -> None:
    ok = call(http, sim, "stripe", "sk_test_good")
    assert ok.headers["request-id"].startswith("req_")
    limited = call(http, sim, "stripe", "sk_test_ratelimited")
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["stripe-should-retry"] == "true"
    assert call(http, sim, "stripe", "sk_test_outage").headers["stripe-should-retry"] == "true"


def test_mapbox_rate_limit_reset_is_epoch_seconds(http: httpx.Client, sim: Simulator) -> None:
    import time

    response = call(http, sim, "mapbox", "pk.ratelimited")
    reset = int(response.headers["x-rate-limit-reset"])
    assert time.time() - 5 < reset < time.time() + 120


def test_mapbox_reports_the_user_named_in_the_token(http: httpx.Client, sim: Simulator) -> None:
    token = "pk.eyJ1IjoiYWNtZS1tYXBzIiwiYSI6ImNrMTIzIn0.c2ln"  # {"u":"acme-maps","a":"ck123"}
    assert call(http, sim, "mapbox", token).json()["token"]["user"] == "acme-maps"
    assert call(http, sim, "mapbox", "pk.opaque").json()["token"]["user"]


def test_google_outage_is_http_500_html(http: httpx.Client, sim: Simulator) -> None:
    response = call(http, sim, "google_maps", "AIza-outage")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")


def test_google_zero_results_is_still_a_working_key(http: httpx.Client, sim: Simulator) -> None:
    p = probe("google_maps", "AIzaGood")
    response = http.get(
        sim.base_url("google_maps") + p.path, params={"address": "nowhere", "key": "AIzaGood"}
    )
    assert response.json() == {"results": [], "status": "ZERO_RESULTS"}


def test_anthropic_headers(http: httpx.Client, sim: Simulator) -> None:
    ok = call(http, sim, "anthropic", "sk-ant-good")
    assert ok.headers["request-id"].startswith("req_")
    limited = call(http, sim, "anthropic", "sk-ant-ratelimited")
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["request_id"] == limited.headers["request-id"]


def test_quo_lists_phone_numbers(http: httpx.Client, sim: Simulator) -> None:
    numbers = call(http, sim, "quo", "quo-good").json()["data"]
    assert [n["number"] for n in numbers] == ["+14155550100", "+14155550101", "+15555550100"]
    assert all(n["id"].startswith("PN") for n in numbers)


def test_quo_error_carries_a_trace_id(http: httpx.Client, sim: Simulator) -> None:
    body = call(http, sim, "quo", "quo-outage").json()
    assert set(body) == {"message", "code", "status", "docs", "title", "trace"}
    assert body["trace"]


def test_unknown_paths_get_the_providers_404(http: httpx.Client, sim: Simulator) -> None:
    stripe = http.get(sim.base_url("stripe") + "/v1/nothing")
    assert stripe.status_code == 404
    assert "Unrecognized request URL" in stripe.json()["error"]["message"]
    assert http.get(sim.url + "/nosuchprovider/v1").status_code == 404


def test_success_bodies_never_echo_the_key(http: httpx.Client, sim: Simulator) -> None:
    for provider in ("stripe", "postmark", "mapbox", "google_maps", "geoapify", "anthropic"):
        key = f"canary-{provider}-9f8e7d6c5b4a"
        assert key not in call(http, sim, provider, key).text
    assert "canary-quo-1234" not in call(http, sim, "quo", "canary-quo-1234").text
