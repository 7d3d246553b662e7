"""Provider resources as code (issue 6), as users see them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from reconciler.db.schema import AuditEntry, Instance, Resource
from tests.conftest import Env


def resources(env: Env, org: str, provider: str) -> dict[str, Resource]:
    with env.session() as s:
        return {
            f"{r.kind}/{r.identity}": r
            for r in s.scalars(
                select(Resource)
                .join(Instance)
                .where(Instance.organization == org, Instance.provider == provider)
            )
        }


def edit(env: Env, name: str, old: str, new: str) -> None:
    path = env.cwd / "manifests" / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_changing_the_default_sender_updates_both(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    edit(
        env,
        "acme.yaml",
        "{email: billing@acme.example, name: Acme Billing, default: true}",
        "{email: billing@acme.example, name: Acme Billing}",
    )
    edit(
        env,
        "acme.yaml",
        "{email: support@acme.example, name: Acme Support}",
        "{email: support@acme.example, name: Acme Support, default: true}",
    )
    doc = json.loads(env.run("plan", "--format", "json").stdout)
    changes = {c["address"]: c for c in doc["changes"]}
    assert set(changes) == {
        "acme/postmark/sender_emails/billing@acme.example",
        "acme/postmark/sender_emails/support@acme.example",
    }
    assert all(
        c["action"] == "update" and c["reason_code"] == "default_changed" for c in changes.values()
    )
    assert env.run("apply").exit_code == 0
    rows = resources(env, "acme", "postmark")
    assert [k for k, r in rows.items() if r.is_default] == ["sender_emails/support@acme.example"]
    assert "No changes." in env.run("plan").stdout


def test_resource_changes_are_audited_and_removals_delete(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    edit(env, "acme.yaml", "          - {email: support@acme.example, name: Acme Support}\n", "")
    edit(
        env,
        "acme.yaml",
        "usage_monitoring: {monthly_budget_usd: 500, alert_at_percent: 80}",
        "usage_monitoring: {monthly_budget_usd: 750, alert_at_percent: 90}",
    )
    doc = json.loads(env.run("plan", "--format", "json").stdout)
    got = {(c["address"], c["action"]) for c in doc["changes"]}
    assert got == {
        ("acme/postmark/sender_emails/support@acme.example", "delete"),
        ("acme/anthropic/usage_monitoring", "update"),
    }
    assert env.run("apply").exit_code == 0
    with env.session() as s:
        audited = {(a.action, a.target) for a in s.scalars(select(AuditEntry))}
    assert ("resource.delete", "acme/postmark/sender_emails/support@acme.example") in audited
    assert ("resource.update", "acme/anthropic/usage_monitoring") in audited
    spec = json.loads(resources(env, "acme", "anthropic")["usage_monitoring/usage_monitoring"].spec)
    assert spec == {"alert_at_percent": 90, "monthly_budget_usd": 750}


def test_resources_of_a_failed_connection_are_not_written(env: Env) -> None:
    env.vars["ACME_POSTMARK_TOKEN"] = "pm-invalid-token"
    r = env.run("apply")
    assert r.exit_code == 1
    assert resources(env, "acme", "postmark") == {}
    assert resources(env, "acme", "quo")  # the others went ahead


def test_a_model_outside_the_catalog_is_checked_with_the_provider(env: Env) -> None:
    edit(env, "acme.yaml", "model: claude-sonnet-4-5", "model: claude-sonnet-4-5-20250929")
    assert env.run("validate").exit_code == 0
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "model/model" in resources(env, "acme", "anthropic")
    edit(env, "acme.yaml", "model: claude-sonnet-4-5-20250929", "model: claude-imaginary-9")
    assert env.run("validate").exit_code == 0
    r = env.run("apply")
    assert r.exit_code == 1
    assert "claude-imaginary-9" in r.output
    spec = json.loads(resources(env, "acme", "anthropic")["model/model"].spec)
    assert spec["value"] == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{email: support@acme.example, name: Acme Support}",
            "{email: support@acme.example, name: Acme Support, default: true}",
            "default",
        ),
        (
            "{email: billing@acme.example, name: Acme Billing, default: true}",
            "{email: billing@acme.example, name: Acme Billing}",
            "default",
        ),
        ("{email: support@acme.example,", "{email: billing@acme.example,", "repeats the email"),
        ("{email: support@acme.example,", "{email: not-an-email,", "email"),
        ('{number: "+15555550100"', '{number: "555-0100"', "E.164"),
        (
            "url: https://acme.example/hooks/stripe",
            "url: http://acme.example/hooks/stripe",
            "https",
        ),
        (
            "url: https://acme.example/hooks/stripe",
            "url: https://user:pw@acme.example/hooks/stripe",
            "url",
        ),
        (
            "events: [invoice.paid, customer.subscription.deleted]",
            "events: [InvoicePaid]",
            "events",
        ),
        ("model: claude-sonnet-4-5", "model: gpt-4o", "model"),
        (
            "      resources:\n        model:",
            "      resources:\n        colour: red\n        model:",
            "colour",
        ),
        ("    - provider: geoapify\n", "    - provider: stripe2\n", "stripe2"),
        ("    - provider: quo\n", "    - provider: quo\n      active: false\n", "toggle"),
    ],
)
def test_invalid_resources_are_refused_with_file_and_line(
    env: Env, old: str, new: str, expected: str
) -> None:
    edit(env, "acme.yaml", old, new)
    r = env.run("validate")
    assert r.exit_code == 1
    assert "acme.yaml:" in r.output
    assert expected in r.output
    assert env.run("apply").exit_code == 1
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert not (env.cwd / url.split("///", 1)[1]).exists()
