"""The seven shipped catalog checks against the bundled simulator: every key rule of keyconv.

This proves the catalog and the simulator speak the same dialect: each check is sent the way the
real API expects (a key in the wrong place would get the provider's missing-auth answer) and
each answer is read the way providers.md says.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.health import (
    CheckRequest,
    CheckResult,
    RetryPolicy,
    TokenResult,
    base_url_for,
    exchange_refresh_token,
    run_checks,
)

simulator = pytest.importorskip("reconciler.simulator")

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "catalog")
OAUTH = load_catalog(ROOT / "tests" / "fixtures" / "catalog_oauth").providers["oauthdemo"]
POLICY = RetryPolicy(
    connect_timeout=1.0,
    read_timeout=2.0,
    deadline=5.0,
    backoff_base=0.01,
    backoff_cap=0.05,
    max_rate_limit_wait=0.05,
    max_total_rate_limit_wait=0.2,
)
PREFIX = {"stripe": "sk_test_", "google_maps": "AIza", "mapbox": "pk.", "anthropic": "sk-ant-"}

# key word -> expected outcome, per provider where it differs from the default
KEY_RULES: dict[str, tuple[str, dict[str, str]]] = {
    "good": ("healthy", {}),
    "invalid": ("invalid_credentials", {}),
    "expired": ("invalid_credentials", {}),
    "revoked": ("invalid_credentials", {}),
    "malformed": ("invalid_credentials", {}),
    "forbidden": ("invalid_credentials", {}),
    "dailylimit": ("invalid_credentials", {}),
    "netblock": ("unreachable", {}),
    "outage": ("unreachable", {}),
    "overloaded": ("unreachable", {}),
    "unknownerror": ("unreachable", {}),
    "ratelimited": ("rate_limited", {}),
    "ratelimit2": ("healthy", {}),
    "flaky2": ("healthy", {}),
}


@pytest.fixture
def sim() -> Iterator[simulator.Simulator]:
    with simulator.Simulator() as running:
        yield running


def request(sim: simulator.Simulator, name: str, word: str) -> CheckRequest:
    provider = CATALOG.providers[name]
    base, overridden = base_url_for(provider, sim.env())
    assert overridden
    key = f"{PREFIX.get(name, '')}{word}_0123456789abcdef"
    return CheckRequest(
        key=(name, word), provider=provider, credentials={"api_key": Secret(key)}, base_url=base
    )


def test_every_shipped_check_reads_every_simulated_answer(sim: simulator.Simulator) -> None:
    requests = [request(sim, n, w) for n in CATALOG.providers for w in KEY_RULES]
    results = run_checks(requests, parallelism=10, policy=POLICY)
    wrong = []
    for r in results:
        name, word = r.key
        outcome, special = KEY_RULES[word]
        expected = special.get(name, outcome)
        got = r.failure_type or "healthy"
        if got != expected:
            wrong.append(f"{name}/{word}: {got} (code {r.provider_code}), expected {expected}")
    assert wrong == []
    transient = {r.key: r.attempts for r in results if r.key[1] in ("ratelimit2", "flaky2")}
    assert all(n == 3 for n in transient.values()), transient


def test_identity_from_simulated_success(sim: simulator.Simulator) -> None:
    names = ["stripe", "postmark", "mapbox"]
    results = {
        r.provider: r for r in run_checks([request(sim, n, "good") for n in names], policy=POLICY)
    }
    assert results["stripe"].identity["account_id"].startswith("acct_")
    assert results["stripe"].identity["mode"] == "test"
    assert {"server_name", "delivery_type"} <= set(results["postmark"].identity)
    assert results["mapbox"].identity["token_user"]


def test_a_revoked_key_fails_then_recovers(sim: simulator.Simulator) -> None:
    req = request(sim, "quo", "good")
    sim.revoke(req.credentials["api_key"].reveal())
    [failed] = run_checks([req], policy=POLICY)
    sim.restore(req.credentials["api_key"].reveal())
    [healthy] = run_checks([req], policy=POLICY)
    assert (failed.failure_type, healthy.status) == ("invalid_credentials", "healthy")


def oauth(sim: simulator.Simulator, refresh: str) -> TokenResult | CheckResult:
    return exchange_refresh_token(
        OAUTH,
        sim.base_url("oauthdemo"),
        Secret("client_demo"),
        Secret("secret_demo"),
        Secret(refresh),
        policy=POLICY,
    )


def test_oauth_provider_connects_from_a_refresh_token(sim: simulator.Simulator) -> None:
    tokens = oauth(sim, "rt_good_0123")
    assert isinstance(tokens, TokenResult)
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    req = CheckRequest(
        key="o",
        provider=OAUTH,
        credentials={"access_token": tokens.access_token},
        base_url=sim.base_url("oauthdemo"),
    )
    [result] = run_checks([req], policy=POLICY)
    assert result.status == "healthy", result
    assert result.message == "OAuth Demo connected successfully"


@pytest.mark.parametrize("refresh", ["rt_revoked_1", "rt_denied_1", "rt_invalid_1"])
def test_revoked_or_denied_grant_is_oauth_denied(sim: simulator.Simulator, refresh: str) -> None:
    result = oauth(sim, refresh)
    assert isinstance(result, CheckResult)
    assert result.failure_type == "oauth_denied"
    assert result.message == "Connection was cancelled. You denied access."
