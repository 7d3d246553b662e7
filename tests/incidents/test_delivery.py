"""Delivery as a user meets it: a receiver that is down never fails a command, nothing is
lost, ``reconciler notify`` delivers later with the same event id; an outage across many
organizations is one event per incident, and one Slack message per run."""

from __future__ import annotations

from sqlalchemy import select

from reconciler.db.schema import Notification
from tests.conftest import CANARIES, Env
from tests.e2e.manifests import connection, organization, write
from tests.incidents.receiver import Receiver


def outbox(env: Env) -> list[Notification]:
    with env.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_receiver_down_keeps_the_event_and_notify_delivers_it(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    receiver.stop()
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health")
    assert r.exit_code == 1  # for the unhealthy connection, not for the receiver
    assert "7 healthy, 1 unhealthy." in r.stdout
    assert "1 notification(s) could not be delivered (connection refused or failed)" in r.stderr
    assert receiver.url not in r.output and "Traceback" not in r.output
    [event] = outbox(env)
    assert event.delivered_at is None and event.attempts == 1 and event.last_error
    # a healthy command is not failed by the receiver either
    r = env.run("health", "--org", "acme")
    assert r.exit_code == 0, r.output
    r = env.run("notify")
    assert r.exit_code == 1
    assert "1 still pending: connection refused or failed." in r.output

    receiver.start()  # back, on the same address
    r = env.run("notify")
    assert r.exit_code == 0, r.output
    assert "Delivered 1 notification(s)." in r.stdout
    [got] = receiver.events()
    assert got["id"] == event.event_id and got["type"] == "incident.opened"
    r = env.run("notify")
    assert r.exit_code == 0 and "No notifications pending." in r.stdout
    assert len(receiver.received) == 1


def test_non_2xx_answers_are_retried_with_the_same_id(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    receiver.status = 500
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health", "--org", "globex")
    assert r.exit_code == 1
    assert "(HTTP 500)" in r.stderr
    assert env.run("notify").exit_code == 1
    receiver.status = 204
    assert env.run("notify").exit_code == 0
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == 3 and len(set(ids)) == 1  # every attempt, one id
    [row] = outbox(env)
    assert row.attempts == 3 and row.delivered_at is not None and row.last_error is None


def test_events_wait_for_the_backoff_between_commands(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    receiver.status = 503
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health", "--org", "globex").exit_code == 1
    receiver.status = 200
    # the next command does not retry before the backoff (30 s after a first failure)
    assert env.run("health", "--org", "acme").exit_code == 0
    assert len(receiver.received) == 1
    assert outbox(env)[0].delivered_at is None


def test_without_a_secret_nothing_is_sent_and_nothing_is_lost(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    del env.vars["RECONCILER_NOTIFY_SECRET"]
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health", "--org", "globex")
    assert r.exit_code == 1
    assert "1 notification(s) pending and not sent: RECONCILER_NOTIFY_SECRET is not set" in (
        r.stderr
    )
    assert receiver.received == []
    env.vars["RECONCILER_NOTIFY_SECRET"] = "now-set"
    assert env.run("notify").exit_code == 0
    assert len(receiver.received) == 1


def test_no_url_no_events(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health")
    assert r.exit_code == 1 and "Incident opened" in r.stdout
    assert outbox(env) == []
    assert env.run("notify").stdout.strip() == "No notifications pending."


def fleet(env: Env, n: int) -> list[str]:
    """``n`` organizations with one Stripe connection each; their variable names."""
    names = [f"org{i:02d}" for i in range(n)]
    orgs = []
    for name in names:
        var = f"{name.upper()}_STRIPE_KEY"
        env.vars[var] = f"sk_test_{name}_fleet"
        orgs.append(organization(name, [connection("stripe", var)]))
    write(env.cwd / "manifests", *orgs)
    return names


def test_an_outage_is_one_event_per_incident(notifying: Env, receiver: Receiver, sim) -> None:
    env = notifying
    names = fleet(env, 5)
    assert env.run("apply").exit_code == 0
    for name in names:
        sim.revoke(env.vars[f"{name.upper()}_STRIPE_KEY"])
    for _ in range(3):
        assert env.run("health").exit_code == 1
    events = receiver.events()
    assert sorted(e["organization"] for e in events) == names
    assert {e["type"] for e in events} == {"incident.opened"}
    assert len({e["incident_id"] for e in events}) == 5


def test_slack_format_groups_a_run_into_one_message(
    notifying: Env, receiver: Receiver, sim
) -> None:
    env = notifying
    env.vars["RECONCILER_NOTIFY_FORMAT"] = "slack"
    del env.vars["RECONCILER_NOTIFY_SECRET"]  # Slack's URL is the secret; nothing is signed
    names = fleet(env, 4)
    assert env.run("apply").exit_code == 0
    for name in names:
        sim.revoke(env.vars[f"{name.upper()}_STRIPE_KEY"])
    assert env.run("health").exit_code == 1
    [message] = receiver.received
    assert "X-Reconciler-Signature" not in message.headers
    text = message.json["text"]
    assert text.startswith("*reconciler*: 4 incidents opened")
    assert all(f"{n}/stripe invalid_credentials" in text for n in names)
    for name in names:
        sim.restore(env.vars[f"{name.upper()}_STRIPE_KEY"])
    assert env.run("health").exit_code == 0
    assert env.run("health").exit_code == 0
    assert len(receiver.received) == 2
    assert receiver.received[1].json["text"].startswith("*reconciler*: 4 resolved")


def test_no_secret_in_any_event_or_header(notifying: Env, receiver: Receiver, sim) -> None:
    env = notifying
    assert env.run("apply").exit_code == 0
    for var in ("GLOBEX_STRIPE_SECRET_KEY", "ACME_POSTMARK_TOKEN", "ACME_ANTHROPIC_KEY"):
        sim.revoke(env.vars[var])
    assert env.run("health").exit_code == 1
    for var in ("GLOBEX_STRIPE_SECRET_KEY", "ACME_POSTMARK_TOKEN", "ACME_ANTHROPIC_KEY"):
        sim.restore(env.vars[var])
    assert env.run("health").exit_code == 0
    assert env.run("health").exit_code == 0
    assert len(receiver.received) == 6
    from tests.conftest import assert_no_canary
    from tests.incidents.conftest import NOTIFY_SECRET

    for got in receiver.received:
        blob = got.body + repr(got.headers).encode()
        assert_no_canary(blob, "a notification")
        assert NOTIFY_SECRET.encode() not in blob
    assert CANARIES  # the fixed canaries were in the environment throughout


def test_a_bad_url_is_a_warning_that_does_not_quote_it(env: Env, sim) -> None:
    env.vars.update(
        RECONCILER_NOTIFY_URL="http://127.0.0.1:99999/CANARYbad-path", RECONCILER_NOTIFY_SECRET="s"
    )
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("--verbose", "health")
    assert r.exit_code == 1
    assert "1 notification(s) could not be delivered (" in r.stderr
    assert "CANARYbad" not in r.output
    assert len(outbox(env)) == 1


def test_each_run_overwrites_its_row(env: Env, sim) -> None:
    from reconciler.db.schema import Run

    assert env.run("apply").exit_code == 0
    assert env.run("health").exit_code == 0
    assert env.run("health", "--org", "nobody").exit_code == 0
    with env.session() as s:
        assert sorted(r.command for r in s.scalars(select(Run))) == ["apply", "health"]
