"""The circuit breaker: an outage of one provider is learned once per run, not once per check.

A black hole (a port that accepts connections and never answers) stands in for a provider that
is down; the simulator answers for a provider that is up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.errors import InputError
from reconciler.core.secret import Secret
from reconciler.health import Breakers, CheckRequest, RetryPolicy, base_url_for, run_checks
from reconciler.health.breaker import SKIPPED_DETAIL, threshold_from_env
from reconciler.simulator import Simulator
from tests.netfaults import BlackHole

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "catalog")
QUICK = RetryPolicy(
    connect_timeout=0.3, read_timeout=0.3, deadline=0.6, backoff_base=0.01, backoff_cap=0.02
)
DOWN = "Could not reach Stripe. The service may be temporarily unavailable."


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    h = BlackHole()
    yield h
    h.close()


def _stripe(hole: BlackHole, i: int) -> CheckRequest:
    return CheckRequest(
        key=("stripe", i),
        provider=CATALOG.providers["stripe"],
        credentials={"api_key": Secret(f"sk_test_good_{i:04d}")},
        base_url=f"http://127.0.0.1:{hole.port}",
    )


def _geoapify(sim: Simulator, i: int) -> CheckRequest:
    provider = CATALOG.providers["geoapify"]
    base, _ = base_url_for(provider, sim.env())
    return CheckRequest(
        key=("geoapify", i),
        provider=provider,
        credentials={"api_key": Secret(f"good_geoapify_{i:04d}")},
        base_url=base,
    )


def test_an_outage_stops_that_providers_checks_and_no_other(
    hole: BlackHole, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    requests = [_stripe(hole, i) for i in range(30)] + [_geoapify(sim, i) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="reconciler.health"):
        results = run_checks(requests, parallelism=3, policy=QUICK, breakers=Breakers(3))

    stripe = [r for r in results if r.provider == "stripe"]
    assert len(stripe) == 30
    assert {(r.status, r.failure_type, r.message) for r in stripe} == {
        ("unhealthy", "unreachable", DOWN)
    }
    sent = [r for r in stripe if r.attempts > 0]
    # the breaker opens after 3 in a row; the rest are not sent, or given up when it opens
    assert len(sent) == 3
    assert all(r.detail == SKIPPED_DETAIL for r in stripe if r not in sent)
    assert hole.accepted <= 3 * QUICK.max_attempts + 2
    assert all(r.healthy for r in results if r.provider == "geoapify")

    said = [r.getMessage() for r in caplog.records if "looks down" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("stripe looks down")
    assert f"{30 - len(sent)} more of its checks" in said[0]


def test_checks_in_flight_are_given_up_when_the_breaker_opens(hole: BlackHole) -> None:
    """Seven checks wait on a black hole; three more are refused at once, and the third refusal
    opens the breaker, so the seven stop waiting instead of each waiting out 5 s."""
    refused = socket.create_server(("127.0.0.1", 0))
    closed_port = refused.getsockname()[1]
    refused.close()
    waiting = RetryPolicy(connect_timeout=0.5, read_timeout=5.0, deadline=5.0, max_attempts=1)
    requests = [_stripe(hole, i) for i in range(7)]
    requests += [
        replace(_stripe(hole, i), base_url=f"http://127.0.0.1:{closed_port}") for i in range(7, 10)
    ]
    results = run_checks(requests, parallelism=10, policy=waiting, breakers=Breakers(3))
    given_up = [r for r in results if r.detail == SKIPPED_DETAIL]
    assert len(given_up) == 7
    assert all(r.message == DOWN and r.response_ms < 4000 for r in given_up)


def test_a_success_between_failures_keeps_the_breaker_closed() -> None:
    breakers = Breakers(3)
    for unreachable in (True, True, False, True, True, False, True, True):
        breakers.record("stripe", None, unreachable)
    assert not breakers.is_open("stripe")
    breakers.record("stripe", None, True)
    assert breakers.is_open("stripe")
    assert not breakers.is_open("postmark")


def test_threshold_zero_never_opens() -> None:
    breakers = Breakers(0)
    for _ in range(100):
        breakers.record("stripe", None, True)
    assert not breakers.is_open("stripe")
    assert breakers.summary() == []


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 10), ("4", 4), ("0", 0), ("-1", None), ("many", None)]
)
def test_threshold_from_the_environment(raw: str, expected: int | None) -> None:
    env = {"RECONCILER_CIRCUIT_BREAKER_AFTER": raw}
    if expected is None:
        with pytest.raises(InputError, match="RECONCILER_CIRCUIT_BREAKER_AFTER"):
            threshold_from_env(env)
    else:
        assert threshold_from_env(env) == expected
