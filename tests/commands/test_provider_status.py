"""``status`` shows what the providers say (SPEC section 8): Postmark senders confirmed or
pending confirmation (with the account token), Anthropic's month-to-date cost against the
budget (with the admin key), and the alert once it crosses alert_at_percent."""

from __future__ import annotations

import json
from typing import Any

from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env, assert_no_canary

ACCOUNT = CANARIES["ACME_POSTMARK_ACCOUNT_TOKEN"]
ADMIN = "sk-ant-admin01-CANARY-5e2a"


def edit(env: Env, old: str, new: str) -> None:
    path = env.cwd / "manifests" / "acme.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def status(env: Env) -> list[dict[str, Any]]:
    r = env.run("status", "--format", "json")
    assert r.exit_code == 0, r.output
    rows: list[dict[str, Any]] = json.loads(r.stdout)
    return rows


def row(rows: list[dict[str, Any]], org: str, provider: str) -> dict[str, Any]:
    return next(r for r in rows if (r["organization"], r["provider"]) == (org, provider))


def test_status_shows_senders_and_usage_from_the_providers(env: Env, sim: Simulator) -> None:
    # the shipped manifest gives acme's Postmark its account token (ACME_POSTMARK_ACCOUNT_TOKEN)
    edit(
        env,
        'credentials: {api_key: "${ACME_ANTHROPIC_KEY}"}',
        'credentials: {api_key: "${ACME_ANTHROPIC_KEY}", admin_key: "${ANTHROPIC_ADMIN}"}',
    )
    env.vars["ANTHROPIC_ADMIN"] = ADMIN
    sim.set_daily_cost(ADMIN, "100")  # $1 a day: far below the $500 budget
    r = env.run("apply")
    assert r.exit_code == 0, r.output

    rows = status(env)
    senders = {
        x["identity"]: x["at_provider"]
        for x in row(rows, "acme", "postmark")["resources"]
        if x["kind"] == "sender_emails"
    }
    assert senders == {
        "billing@acme.example": "pending confirmation",
        "support@acme.example": "pending confirmation",
    }
    globex = row(rows, "globex", "postmark")["resources"]
    assert {x["at_provider"] for x in globex if x["kind"] == "sender_emails"} == {
        "not verified at Postmark (no account_token)"
    }
    anthropic = row(rows, "acme", "anthropic")
    assert anthropic["budget_usd"] == 500.0
    assert 0 < anthropic["month_to_date_usd"] <= 31.0
    assert anthropic["usage_alert"] is False

    (billing,) = [
        s
        for s in sim.objects("postmark", "senders", ACCOUNT)
        if s["EmailAddress"] == "billing@acme.example"
    ]
    sim.change_object("postmark", "senders", ACCOUNT, str(billing["ID"]), {"Confirmed": True})
    sim.set_daily_cost(ADMIN, "2000000")  # $20,000 a day: over the alert threshold
    rows = status(env)
    senders = {
        x["identity"]: x["at_provider"]
        for x in row(rows, "acme", "postmark")["resources"]
        if x["kind"] == "sender_emails"
    }
    assert senders["billing@acme.example"] == "confirmed"
    assert senders["support@acme.example"] == "pending confirmation"
    assert row(rows, "acme", "anthropic")["usage_alert"] is True

    r = env.run("health")
    assert "Budget alert: acme/anthropic: $" in r.stdout, r.output
    assert "over the alert threshold of 80 %" in r.stdout
    doc = json.loads(env.run("health", "--format", "json").stdout)
    (checked,) = [x for x in doc if x["address"] == "acme/anthropic"]
    assert checked["usage"]["alert"] is True and checked["usage"]["budget_usd"] == 500.0

    r = env.run("status")
    assert r.exit_code == 0
    assert "over the alert threshold of 80 %" in r.stdout
    assert "billing@acme.example (default), confirmed" in r.stdout
    assert "support@acme.example, pending confirmation" in r.stdout
    for out in (r.output, json.dumps(rows)):
        assert_no_canary(out)
        assert ACCOUNT not in out and ADMIN not in out
