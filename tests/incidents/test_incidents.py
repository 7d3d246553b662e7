"""Incidents as a user meets them (SPEC section 10): a revoked key opens one incident and one
signed ``incident.opened`` event, repeated failures add nothing, recovery resolves it once."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from reconciler.db.schema import Incident, Notification
from reconciler.incidents import HEADER, verify
from tests.conftest import Env
from tests.incidents.conftest import NOTIFY_SECRET
from tests.incidents.receiver import Receiver

INVALID = "The API key you entered is invalid. Please check your credentials."


def incidents(env: Env) -> list[Incident]:
    with env.session() as s:
        return list(s.scalars(select(Incident).order_by(Incident.id)))


def test_revoked_key_opens_one_incident_then_recovery_resolves_it(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    assert receiver.received == []  # healthy checks open nothing
    key = env.vars["GLOBEX_STRIPE_SECRET_KEY"]
    sim.revoke(key)
    r = env.run("health")
    assert r.exit_code == 1
    assert "Incident opened: globex/stripe invalid_credentials" in r.stdout
    [got] = receiver.received
    event = got.json
    assert event["type"] == "incident.opened"
    assert event["organization"] == "globex" and event["provider"] == "stripe"
    assert event["failure_type"] == "invalid_credentials"
    assert event["message"] == INVALID
    assert event["opened_at"] and event["resolved_at"] is None
    assert event["id"].startswith("evt_") and event["incident_id"].startswith("inc_")
    # the signature verifies over the raw body, and only over it, and only while fresh
    header = got.headers[HEADER]
    assert verify(NOTIFY_SECRET, got.body, header)
    assert not verify(NOTIFY_SECRET, got.body + b" ", header)
    assert not verify("another-secret", got.body, header)
    assert not verify(NOTIFY_SECRET, got.body, header, now=time.time() + 3600)
    assert got.headers["Content-Type"] == "application/json"

    for _ in range(3):  # the connection keeps failing: no new incident, no new event
        assert env.run("health").exit_code == 1
    assert len(receiver.received) == 1
    [inc] = incidents(env)
    assert inc.failures == 4 and inc.resolved_at is None

    r = env.run("status")
    assert "Open incidents" in r.stdout
    assert "globex/stripe" in r.stdout and "invalid_credentials" in r.stdout
    assert "open for" in r.stdout
    rows = {
        f"{x['organization']}/{x['provider']}": x
        for x in json.loads(env.run("status", "--format", "json").stdout)
    }
    [open_one] = rows["globex/stripe"]["incidents"]
    assert open_one["id"] == event["incident_id"]
    assert open_one["failure_type"] == "invalid_credentials"
    assert open_one["failed_checks"] == 4
    assert open_one["open_seconds"] >= 0
    assert rows["acme/stripe"]["incidents"] == []

    sim.restore(key)
    assert env.run("health").exit_code == 0
    assert len(receiver.received) == 1  # one healthy check is not enough (default 2)
    r = env.run("health")
    assert r.exit_code == 0
    assert "Incident resolved: globex/stripe invalid_credentials" in r.stdout
    assert len(receiver.received) == 2
    resolved = receiver.received[1].json
    assert resolved["type"] == "incident.resolved"
    assert resolved["incident_id"] == event["incident_id"]
    assert resolved["id"] != event["id"]
    assert resolved["resolved_at"] and resolved["opened_at"] == event["opened_at"]
    assert resolved["message"] == "Stripe connected successfully"
    assert verify(NOTIFY_SECRET, receiver.received[1].body, receiver.received[1].headers[HEADER])
    # kept as history, no longer open
    [inc] = incidents(env)
    assert inc.resolved_at is not None and inc.open_key is None
    assert "Open incidents" not in env.run("status").stdout
    for r in receiver.received:
        assert NOTIFY_SECRET not in r.body.decode() and NOTIFY_SECRET not in str(r.headers)


def test_a_flapping_connection_stays_one_incident(notifying: Env, receiver: Receiver, sim) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    key = env.vars["GLOBEX_STRIPE_SECRET_KEY"]
    for _ in range(3):  # failing, healthy, failing... within the resolve window
        sim.revoke(key)
        assert env.run("health", "--org", "globex").exit_code == 1
        sim.restore(key)
        assert env.run("health", "--org", "globex").exit_code == 0
    assert [e["type"] for e in receiver.events()] == ["incident.opened"]
    assert len(incidents(env)) == 1
    assert env.run("health", "--org", "globex").exit_code == 0
    assert [e["type"] for e in receiver.events()] == ["incident.opened", "incident.resolved"]


def test_resolve_after_is_configurable(notifying: Env, receiver: Receiver, sim) -> None:
    env = notifying
    env.vars["RECONCILER_RESOLVE_AFTER"] = "1"
    assert env.run("apply").exit_code == 0
    key = env.vars["GLOBEX_STRIPE_SECRET_KEY"]
    sim.revoke(key)
    assert env.run("health", "--org", "globex").exit_code == 1
    sim.restore(key)
    assert env.run("health", "--org", "globex").exit_code == 0
    assert [e["type"] for e in receiver.events()] == ["incident.opened", "incident.resolved"]
    env.vars["RECONCILER_RESOLVE_AFTER"] = "zero"
    r = env.run("health")
    assert r.exit_code == 1
    assert "RECONCILER_RESOLVE_AFTER is 'zero'; it must be a whole number" in r.output


def test_a_failed_first_apply_opens_the_incident(notifying: Env, receiver: Receiver) -> None:
    env = notifying
    env.vars["GLOBEX_STRIPE_SECRET_KEY"] = "sk_test_invalid_key_42"
    r = env.run("apply")
    assert r.exit_code == 1
    [event] = receiver.events()
    assert (event["type"], event["organization"], event["provider"]) == (
        "incident.opened",
        "globex",
        "stripe",
    )
    assert env.run("apply").exit_code == 1  # the retry fails the same way: nothing new
    assert len(receiver.received) == 1
    with notifying.session() as s:
        assert s.scalar(select(Notification.delivered_at)) is not None


def test_removing_a_failing_connection_resolves_its_incident(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health").exit_code == 1
    path = env.cwd / "manifests" / "globex.yaml"
    text = path.read_text()
    start = text.index("    - provider: stripe")
    end = text.index("    - provider: postmark")
    path.write_text(text[:start] + text[end:])
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    opened, resolved = receiver.events()
    assert resolved["type"] == "incident.resolved" and resolved["resolution"] == "removed"
    assert resolved["incident_id"] == opened["incident_id"]
    assert resolved["message"] == "globex/stripe was removed; it is no longer checked."
    assert [i.resolved_at is not None for i in incidents(env)] == [True]
    assert env.run("apply").exit_code == 0
    assert len(receiver.received) == 2
