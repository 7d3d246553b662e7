"""A provider outage during apply: its checks stop after the breaker opens, every instance of
it is `error` with the exact SPEC message, and every other provider connects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import Result
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.conftest import Env
from tests.e2e.manifests import connection, organization, write
from tests.netfaults import BlackHole

DOWN = "Could not reach Stripe. The service may be temporarily unavailable."
ORGS = [f"org{i:02d}" for i in range(12)]


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    h = BlackHole()
    yield h
    h.close()


def apply_with_stripe_down(env: Env, hole: BlackHole, **stripe: object) -> Result:
    """``apply`` at --parallelism 4 of the organizations, each with Stripe (and ``stripe``,
    e.g. its resources) and Geoapify, Stripe black-holed."""
    write(
        env.cwd / "manifests",
        *(
            organization(
                org,
                [
                    connection("stripe", "STRIPE_KEY", **stripe),
                    connection("geoapify", "GEOAPIFY_KEY"),
                ],
            )
            for org in ORGS
        ),
    )
    return env.run(
        "apply",
        "manifests",
        "--parallelism",
        "4",
        STRIPE_KEY="sk_test_good_key_0001",
        GEOAPIFY_KEY="good_geoapify_key12345",
        RECONCILER_BASE_URL_STRIPE=f"http://127.0.0.1:{hole.port}",
        RECONCILER_CHECK_DEADLINE="1",
    )


def statuses(s: Session) -> dict[str, int]:
    """Instances per "provider:status"."""
    rows = s.execute(
        text(
            "SELECT provider || ':' || status, count(*) FROM integration_instances"
            " GROUP BY provider, status"
        )
    ).all()
    return {key: count for key, count in rows}


def test_a_black_holed_provider_fails_fast_and_alone(env: Env, hole: BlackHole) -> None:
    result = apply_with_stripe_down(env, hole)
    assert result.exit_code == 1, result.output
    # the breaker opened after 4 unreachable checks: far fewer than 12 were ever sent
    assert hole.accepted < len(ORGS)

    with env.session() as s:
        assert statuses(s) == {"stripe:error": len(ORGS), "geoapify:active": len(ORGS)}
        stripe_health = s.execute(
            text(
                "SELECT h.failure_type, h.message FROM integration_health h "
                "JOIN integration_instances i ON i.id = h.instance_id WHERE i.provider = 'stripe'"
            )
        ).all()
        assert len(stripe_health) == len(ORGS)
        assert set(stripe_health) == {("unreachable", DOWN)}
        connected = s.execute(
            text(
                "SELECT count(*) FROM integration_connections c JOIN integration_instances i "
                "ON i.id = c.instance_id WHERE i.provider = 'geoapify' AND c.status = 'connected'"
            )
        ).scalar_one()
        assert connected == len(ORGS)


def test_a_black_holed_provider_is_read_once_per_run_too(env: Env, hole: BlackHole) -> None:
    """With webhooks at Stripe, apply's plan reads Stripe, and apply checks the new keys
    meanwhile: the reads stop after their breaker opens (each connection noted as not read),
    and so do the checks, which say once that Stripe looks down; the apply ends with every
    Stripe instance `error` and no create sent."""
    hook = {
        "webhook_endpoints": [{"url": "https://example.com/hooks", "events": ["charge.failed"]}]
    }
    result = apply_with_stripe_down(env, hole, resources=hook)
    assert result.exit_code == 1, result.output
    # the reads stopped after the breaker opened (4 unreachable in a row at --parallelism 4):
    # the other connections are noted as not read, without a request
    not_read = result.output.count("Stripe could not be read")
    skipped = result.output.count("(circuit breaker open)")
    assert not_read == len(ORGS), result.output
    assert skipped >= len(ORGS) - 4 - 3, result.output  # at most 3 more were in flight
    # the checks sent during the reads learned it too, and the run says so once
    said = [line for line in result.output.splitlines() if "looks down" in line]
    assert len(said) == 1, result.output
    assert "stripe looks down: 4 checks in a row could not reach it, so 8 more" in said[0]
    with env.session() as s:
        assert statuses(s) == {"stripe:error": len(ORGS), "geoapify:active": len(ORGS)}
        assert s.execute(text("SELECT count(*) FROM integration_resources")).scalar_one() == 0
