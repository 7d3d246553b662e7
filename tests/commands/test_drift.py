"""``reconciler drift`` (SPEC section 8): config, provider and credential drift, exit 0/2/1,
``--format json``, and nothing written anywhere (the database dump is identical, the
simulator saw only GETs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env, assert_no_canary
from tests.e2e.test_provider_resources import dump

STRIPE_KEY = CANARIES["ACME_STRIPE_SECRET_KEY"]
ENDPOINT = "acme/stripe/webhook_endpoints/https://acme.example/hooks/stripe"


@pytest.fixture
def logged(env: Env) -> Iterator[tuple[Simulator, list[str]]]:
    lines: list[str] = []
    with Simulator(access_log=lines.append) as sim:
        env.vars.update(sim.env())
        yield sim, lines


def test_no_drift_after_apply_exits_0(env: Env, logged: tuple[Simulator, list[str]]) -> None:
    assert env.run("apply").exit_code == 0
    r = env.run("drift")
    assert r.exit_code == 0, r.output
    assert "No drift" in r.stdout
    r = env.run("drift", "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc == {
        "format_version": 1,
        "findings": [],
        "summary": {"config": 0, "provider": 0, "credential": 0},
    }


def test_drift_reports_the_three_kinds_and_writes_nothing(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    assert env.run("apply").exit_code == 0
    # provider: the endpoint changed in Stripe's dashboard
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    sim.change_object(
        "stripe", "webhook_endpoints", STRIPE_KEY, endpoint["id"], {"enabled_events": ["x.y"]}
    )
    # config: a sender renamed in the SaaS's screens
    with env.session() as s:
        s.execute(
            text(
                "UPDATE integration_resources SET spec = :spec WHERE kind = 'sender_emails' "
                "AND identity = 'support@acme.example'"
            ),
            {"spec": json.dumps({"email": "support@acme.example", "name": "Edited"})},
        )
        s.commit()
    # credential: globex's Postmark token revoked at Postmark
    sim.revoke(CANARIES["GLOBEX_POSTMARK_TOKEN"])

    before = dump(env)
    log.clear()
    r = env.run("drift", "--format", "json")
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    kinds = {(f["address"], f["kind"]) for f in doc["findings"]}
    assert (ENDPOINT, "provider") in kinds
    assert ("acme/postmark/sender_emails/support@acme.example", "config") in kinds
    assert ("globex/postmark", "credential") in kinds
    assert doc["summary"] == {"config": 1, "provider": 1, "credential": 1}
    assert all(set(f) == {"address", "kind", "detail"} for f in doc["findings"])
    provider = next(f for f in doc["findings"] if f["kind"] == "provider")
    assert "changed at Stripe: events" in provider["detail"]

    r = env.run("drift")
    assert r.exit_code == 2
    assert "Drift: 1 config, 1 provider, 1 credential." in r.stdout
    assert_no_canary(r.output)
    # read-only: nothing written anywhere, and only GETs sent
    assert dump(env) == before
    assert log and all(line.startswith("GET ") for line in log), log
    (still,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert still["enabled_events"] == ["x.y"]


def test_drift_selects_organizations_and_fails_on_bad_input(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    with env.session() as s:
        s.execute(text("UPDATE integration_resources SET spec = '{}' WHERE kind = 'model'"))
        s.commit()
    assert env.run("drift", "--org", "globex").exit_code == 0
    assert env.run("drift", "--exclude-org", "acme").exit_code == 0
    assert env.run("drift", "--org", "acme").exit_code == 2
    r = env.run("drift", "nope/")
    assert r.exit_code == 1
