"""Pure pieces of the health engine: request building, rules, waits, messages, redaction."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.errors import ConfigError
from reconciler.core.secret import Secret
from reconciler.health import base_url_for, message_for, prepare_request
from reconciler.health.classify import Answer, classify, identity_from_key, lookup
from reconciler.health.policy import RetryBudget, RetryPolicy, hinted_wait
from reconciler.health.redaction import QueryRedactingFilter, redact_query_strings

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "catalog")


def provider(name: str):
    return CATALOG.providers[name]


# -- messages (SPEC section 4, verbatim) ------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "display", "expected"),
    [
        ("healthy", "Stripe", "Stripe connected successfully"),
        (
            "invalid_credentials",
            "Stripe",
            "The API key you entered is invalid. Please check your credentials.",
        ),
        (
            "unreachable",
            "Quo (OpenPhone)",
            "Could not reach Quo (OpenPhone). The service may be temporarily unavailable.",
        ),
        ("rate_limited", "Mapbox", "Connection test was rate limited. Please wait a moment."),
        ("oauth_denied", "OAuth Demo", "Connection was cancelled. You denied access."),
    ],
)
def test_messages_are_the_spec_sentences(outcome: str, display: str, expected: str) -> None:
    assert message_for(outcome, display) == expected


# -- base URL ---------------------------------------------------------------------------------


def test_base_url_is_the_catalog_origin_without_override() -> None:
    assert base_url_for(provider("stripe"), {}) == ("https://api.stripe.com", False)


def test_base_url_override_replaces_origin_and_keeps_prefix() -> None:
    env = {"RECONCILER_BASE_URL_GOOGLE_MAPS": "http://127.0.0.1:8080/google_maps/"}
    url, overridden = base_url_for(provider("google_maps"), env)
    assert (url, overridden) == ("http://127.0.0.1:8080/google_maps", True)
    prepared = prepare_request(provider("google_maps"), url, {"api_key": Secret("AIzaX")})
    assert prepared.url == "http://127.0.0.1:8080/google_maps/maps/api/geocode/json"


@pytest.mark.parametrize("value", ["ftp://x", "127.0.0.1:8080", "http://h/p?q=1", "http:///x"])
def test_bad_override_is_a_config_error_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="RECONCILER_BASE_URL_STRIPE"):
        base_url_for(provider("stripe"), {"RECONCILER_BASE_URL_STRIPE": value})


# -- request building ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "headers", "params"),
    [
        ("postmark", "/server", {"X-Postmark-Server-Token": "K", "Accept": "application/json"}, {}),
        ("stripe", "/v1/account", {"Authorization": "Bearer K"}, {}),
        ("mapbox", "/tokens/v2", {}, {"access_token": "K"}),
        (
            "google_maps",
            "/maps/api/geocode/json",
            {},
            {"key": "K", "address": "1600 Amphitheatre Parkway, Mountain View, CA"},
        ),
        ("geoapify", "/v1/ipinfo", {}, {"apiKey": "K"}),
        (
            "anthropic",
            "/v1/models",
            {"x-api-key": "K", "anthropic-version": "2023-06-01"},
            {"limit": "1"},
        ),
        ("quo", "/v1/phone-numbers", {"Authorization": "K"}, {}),
    ],
)
def test_each_provider_request_is_built_the_way_its_api_expects(
    name: str, path: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    prepared = prepare_request(provider(name), "https://b.example/p", {"api_key": Secret("K")})
    assert prepared.method == "GET"
    assert prepared.url == "https://b.example/p" + path
    assert dict(prepared.params) == params
    assert headers.items() <= dict(prepared.headers).items()


def test_redacted_url_hides_only_the_key() -> None:
    prepared = prepare_request(
        provider("google_maps"), "https://m.example", {"api_key": Secret("AIzaSECRET")}
    )
    shown = prepared.redacted_url
    assert "AIzaSECRET" not in shown
    assert "key=(sensitive)" in shown
    assert "address=1600" in shown


def test_missing_credential_field_is_named_not_shown() -> None:
    with pytest.raises(ValueError, match="api_key"):
        prepare_request(provider("stripe"), "https://x.example", {"other": Secret("v")})


# -- rules ------------------------------------------------------------------------------------


def test_lookup_follows_dotted_paths_into_lists() -> None:
    doc = {"error": {"code": "x"}, "data": [{"id": "PN1"}]}
    assert lookup(doc, "error.code") == "x"
    assert lookup(doc, "data.0.id") == "PN1"
    assert lookup(doc, "error.type") is not None  # missing -> sentinel, never KeyError


def test_true_is_not_one_when_matching_rules() -> None:
    check = provider("postmark").health_check
    verdict = classify(check, Answer(401, {}, b'{"ErrorCode": true}'))
    assert verdict.outcome == "invalid_credentials"  # generic 401, not the ErrorCode-10 rule
    assert verdict.provider_code == "True"


def test_identity_and_code_never_carry_the_key() -> None:
    check = provider("mapbox").health_check
    body = b'{"code": "TokenValid", "token": {"user": "pk.SECRET"}}'
    assert classify(check, Answer(200, {}, body), ["pk.SECRET"]).identity == {}
    body = b'{"code": "bad pk.SECRET"}'
    assert classify(check, Answer(200, {}, body), ["pk.SECRET"]).provider_code is None


@pytest.mark.parametrize(
    ("key", "mode"),
    [("sk_live_1", "live"), ("sk_test_1", "test"), ("rk_live_1", "live"), ("xx", None)],
)
def test_stripe_mode_comes_from_the_key_prefix(key: str, mode: str | None) -> None:
    found = identity_from_key(provider("stripe").health_check.identity_from_key, key)
    assert found.get("mode") == mode


# -- waits ------------------------------------------------------------------------------------


def test_retry_after_seconds_http_date_and_reset_epoch() -> None:
    now = 1_700_000_000.0
    assert hinted_wait({"Retry-After": "3"}, ["Retry-After"], [], now) == 3.0
    date = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=5), usegmt=True)
    assert hinted_wait({"retry-after": date}, ["Retry-After"], [], now) == pytest.approx(5.0)
    reset = {"X-Rate-Limit-Reset": str(int(now) + 7)}
    assert hinted_wait(reset, ["Retry-After"], ["X-Rate-Limit-Reset"], now) == 7.0
    assert hinted_wait({"Retry-After": "soon"}, ["Retry-After"], [], now) is None
    past = format_datetime(datetime.fromtimestamp(now - 60, UTC), usegmt=True)
    assert hinted_wait({"Retry-After": past}, ["Retry-After"], [], now) == 0.0


def test_rate_limit_waits_are_clamped_and_bounded_in_total() -> None:
    policy = RetryPolicy(max_rate_limit_wait=2.0, max_total_rate_limit_wait=5.0)
    budget = RetryBudget(policy)
    waits = []
    while (w := budget.wait_before_retry("rate_limited", 429, 3600.0)) is not None:
        waits.append(w)
    assert waits == [2.0, 2.0]


def test_backoff_is_capped_jittered_and_limited_in_attempts() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_cap=3.0)
    budget = RetryBudget(policy, random.Random(1))
    waits = []
    while (w := budget.wait_before_retry("unreachable", 503, None)) is not None:
        waits.append(w)
    assert len(waits) == 4
    assert all(0 < w <= 3.0 for w in waits)
    assert 0.5 <= waits[0] <= 1.0


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("invalid_credentials", 401),
        ("invalid_credentials", 403),
        ("unreachable", 500),
        ("unreachable", 302),
        ("unreachable", 200),
        ("healthy", 200),
    ],
)
def test_final_answers_are_not_retried(outcome: str, status: int) -> None:
    assert RetryBudget(RetryPolicy()).wait_before_retry(outcome, status, 1.0) is None


# -- log redaction ----------------------------------------------------------------------------


def test_query_values_are_redacted_in_transport_logs() -> None:
    text = 'HTTP Request: GET http://h/tokens/v2?access_token=pk.abc&x=1 "HTTP/1.1 200 OK"'
    assert redact_query_strings(text) == (
        "HTTP Request: GET http://h/tokens/v2?access_token=(sensitive)&x=(sensitive) "
        '"HTTP/1.1 200 OK"'
    )
    record = logging.LogRecord(
        "httpx", logging.INFO, "f", 1, "GET %s", ("http://h/?key=AIzaS",), None
    )
    QueryRedactingFilter().filter(record)
    assert "AIzaS" not in record.getMessage()
