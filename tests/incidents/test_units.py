"""The pieces on their own: the signature (and the receiver's code in docs/notifications.md,
run as written), the settings' errors, the backoff, the Slack body; incidents opened by two
commands at once stay one."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from reconciler.core.errors import ConfigError
from reconciler.db.engine import ensure_schema
from reconciler.db.schema import Incident, Notification
from reconciler.incidents import CheckOutcome, NotifySettings, record, record_checks, sign, verify
from reconciler.incidents.delivery import backoff
from reconciler.incidents.slack import slack_body
from tests.conftest import REPO, Env

DOC = REPO / "docs" / "notifications.md"


def doc_verifier() -> object:
    """The Python block of docs/notifications.md, executed as a receiver would paste it."""
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    scope: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), scope)
    return scope["verify_reconciler_signature"]


def test_signature_round_trip_and_the_documented_receiver_agree() -> None:
    body = b'{"id":"evt_1","type":"incident.opened"}'
    header = sign("s3cret", body)
    t, _mac = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header).groups()  # type: ignore[union-attr]
    assert abs(int(t) - time.time()) < 5
    documented = doc_verifier()
    for check in (verify, documented):
        assert check("s3cret", body, header)  # type: ignore[operator]
        assert not check("s3cret", body + b"\n", header)  # type: ignore[operator]
        assert not check("other", body, header)  # type: ignore[operator]
        assert not check("s3cret", body, f"t={t}")  # type: ignore[operator]
        assert not check("s3cret", body, "garbage")  # type: ignore[operator]
    stale = sign("s3cret", body, int(time.time()) - 3600)
    assert not verify("s3cret", body, stale)
    assert not documented("s3cret", body, stale)  # type: ignore[operator]
    assert verify("s3cret", body, stale, tolerance=7200)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECONCILER_RESOLVE_AFTER", "0", "RECONCILER_RESOLVE_AFTER is '0'; it must be at least 1"),
        ("RECONCILER_RESOLVE_AFTER", "2.5", "must be a whole number"),
        ("RECONCILER_NOTIFY_FORMAT", "teams", "use one of: webhook, slack"),
        ("RECONCILER_NOTIFY_URL", "ftp://x", "must be an http:// or https:// URL"),
        ("RECONCILER_NOTIFY_TIMEOUT", "soon", "must be a number of seconds"),
    ],
)
def test_bad_settings_are_clear_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        NotifySettings.from_environ({name: value})


def test_a_bad_setting_stops_the_command_before_it_starts(env: Env) -> None:
    r = env.run("apply", RECONCILER_NOTIFY_URL="hooks.example/x")
    assert r.exit_code == 1
    assert "RECONCILER_NOTIFY_URL must be an http:// or https:// URL" in r.output
    assert "hooks.example" not in r.output  # the URL itself is never printed
    assert not (env.cwd / "reconciler.db").exists()


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(50) == timedelta(hours=1)


def test_slack_body_is_one_message() -> None:
    events = [
        {
            "type": "incident.opened",
            "address": f"org{i}/stripe",
            "failure_type": "unreachable",
            "message": "Could not reach Stripe. The service may be temporarily unavailable.",
            "opened_at": "2026-11-30T21:00:00Z",
        }
        for i in range(3)
    ]
    text = json.loads(slack_body(events))["text"]
    assert text.splitlines()[0] == "*reconciler*: 3 incidents opened"
    assert len(text.splitlines()) == 4
    many = json.loads(slack_body(events * 40))["text"].splitlines()
    assert many[0] == "*reconciler*: 120 incidents opened"
    assert len(many) == 52 and many[-1] == "... and 70 more (`reconciler status`)"


def outcome(healthy: bool, minutes: int, failure: str = "invalid_credentials") -> CheckOutcome:
    return CheckOutcome(
        "acme",
        "stripe",
        healthy,
        None if healthy else failure,
        "Stripe connected successfully" if healthy else "The API key you entered is invalid.",
        datetime(2026, 11, 30, 12, tzinfo=UTC) + timedelta(minutes=minutes),
    )


def test_rules_as_a_truth_table(env: Env) -> None:
    url = env.vars["RECONCILER_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    ensure_schema(engine)
    settings = NotifySettings(resolve_after=2, url="http://127.0.0.1:9/x", secret="s")
    steps = [
        # (healthy, failure type) -> changes
        ((False, "invalid_credentials"), ["opened"]),
        ((False, "invalid_credentials"), []),
        ((False, "rate_limited"), ["opened"]),  # another failure type: its own incident
        ((True, None), []),
        ((False, "rate_limited"), []),  # flapping: the streak starts again
        ((True, None), []),
        ((True, None), ["resolved", "resolved"]),  # both, after two healthy checks
        ((True, None), []),
        ((False, "invalid_credentials"), ["opened"]),  # a new one after resolution
    ]
    try:
        for minute, ((healthy, failure), expected) in enumerate(steps):
            with Session(engine) as s, s.begin():
                changes = record_checks(s, [outcome(healthy, minute, failure or "x")], settings)
            assert [c.kind for c in changes] == expected, (minute, healthy, failure)
        with Session(engine) as s:
            rows = list(s.scalars(select(Incident).order_by(Incident.id)))
            kinds = [n.type for n in s.scalars(select(Notification).order_by(Notification.id))]
        assert [(i.failure_type, i.resolved_at is None) for i in rows] == [
            ("invalid_credentials", False),
            ("rate_limited", False),
            ("invalid_credentials", True),
        ]
        assert rows[0].failures == 2 and rows[1].failures == 2
        assert kinds == ["incident.opened"] * 2 + ["incident.resolved"] * 2 + ["incident.opened"]
    finally:
        engine.dispose()


def test_two_commands_opening_the_same_incident_make_one(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands both saw no open incident and both open one: the unique open key refuses
    the second, which counts as one more failure of the first (no second event)."""
    url = env.vars["RECONCILER_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    ensure_schema(engine)
    settings = NotifySettings(url="http://127.0.0.1:9/x", secret="s")
    try:
        with Session(engine) as first, first.begin():
            record_checks(first, [outcome(False, 0)], settings)
        # the second read the open incidents before the first committed: it saw none
        monkeypatch.setattr(record, "_open_incidents", lambda s, orgs: defaultdict(list))
        with Session(engine) as second, second.begin():
            changes = record_checks(second, [outcome(False, 1)], settings)
        assert changes == []
        with Session(engine) as s:
            [inc] = s.scalars(select(Incident)).all()
            assert inc.failures == 2
            assert len(s.scalars(select(Notification)).all()) == 1
    finally:
        engine.dispose()


def test_docs_name_every_field_an_event_has(env: Env, sim) -> None:
    from tests.incidents.receiver import Receiver

    receiver = Receiver().start()
    try:
        env.vars.update(RECONCILER_NOTIFY_URL=receiver.url, RECONCILER_NOTIFY_SECRET="s")
        assert env.run("apply").exit_code == 0
        sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
        assert env.run("health").exit_code == 1
        sim.restore(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
        env.run("health")
        env.run("health")
        doc = Path(DOC).read_text()
        [opened, resolved] = receiver.events()
        for field in set(opened) | set(resolved):
            assert f"`{field}`" in doc, field
        got = receiver.received[0]
        assert doc_verifier()("s", got.body, got.headers["X-Reconciler-Signature"])  # type: ignore[operator]
    finally:
        receiver.stop()
