"""``reconciler drift`` (SPEC section 8): config, provider and credential drift, exit 0/2/1,
``--format json``, and nothing written anywhere (the database dump is identical, the
simulator saw only GETs)."""

from __future__ import annotations

import json

from sqlalchemy import text

from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env, assert_no_canary
from tests.e2e.test_provider_resources import dump

STRIPE_KEY = CANARIES["ACME_STRIPE_SECRET_KEY"]
ENDPOINT = "acme/stripe/webhook_endpoints/https://acme.example/hooks/stripe"


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
        "errors": [],
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


def test_a_provider_that_fails_to_answer_is_an_error_not_drift(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    """Quo answers acme's new key with a 500: that connection could not be checked, which is
    an error (exit 1) listed under ``errors``; the other connections are still reported."""
    sim, log = logged
    assert env.run("apply").exit_code == 0
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    sim.delete_object("stripe", "webhook_endpoints", STRIPE_KEY, endpoint["id"])
    env.vars["ACME_QUO_KEY"] = "quo-outage-rotated"  # the simulator's 500 for every request
    log.clear()
    r = env.run("drift", "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    (error,) = doc["errors"]
    assert error["address"] == "acme/quo"
    assert error["detail"].startswith("Quo (OpenPhone) could not be read (quo: ")
    assert "HTTP 500" in error["detail"]
    assert not [f for f in doc["findings"] if f["address"].startswith("acme/quo/")]
    # the other connections' drift is still there: the endpoint deleted at Stripe
    assert (ENDPOINT, "provider") in {(f["address"], f["kind"]) for f in doc["findings"]}
    assert doc["summary"]["provider"] == 1
    assert "Error: acme/quo: Quo (OpenPhone) could not be read" in r.stderr
    assert log and all(line.startswith("GET ") for line in log), log

    r = env.run("drift")
    assert r.exit_code == 1
    assert "1 connection could not be checked (see the errors)" in r.stdout
    assert "Error: acme/quo: Quo (OpenPhone) could not be read" in r.stderr
    assert_no_canary(r.output)


def test_a_refused_key_at_the_provider_read_is_an_error_and_a_credential_finding(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    """Stripe refuses acme's key (401): its endpoints could not be read (an error, not a
    ``provider`` finding); the stored key failing its check is ``credential`` drift."""
    sim, _ = logged
    assert env.run("apply").exit_code == 0
    sim.revoke(STRIPE_KEY)
    r = env.run("drift", "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert [e["address"] for e in doc["errors"]] == ["acme/stripe"]
    assert "HTTP 401" in doc["errors"][0]["detail"]
    assert {(f["address"], f["kind"]) for f in doc["findings"]} == {("acme/stripe", "credential")}
    assert doc["summary"] == {"config": 0, "provider": 0, "credential": 1}
    assert_no_canary(r.output)


def test_a_provider_down_for_the_credential_check_is_an_error(env: Env) -> None:
    """No answer to a stored credential's health check says nothing about the credential:
    an error naming the connection, not ``credential`` drift."""
    assert env.run("apply").exit_code == 0
    env.vars["RECONCILER_BASE_URL_GEOAPIFY"] = "http://127.0.0.1:9"  # nothing listens there
    r = env.run("drift", "--format", "json", "--org", "acme")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["findings"] == []
    assert doc["errors"] == [
        {
            "address": "acme/geoapify",
            "detail": "the credential could not be checked: Could not reach Geoapify. "
            "The service may be temporarily unavailable.",
        }
    ]
