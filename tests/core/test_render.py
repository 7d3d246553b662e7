"""Rendering Plan values: text (Terraform style), JSON (docs/plan-format.md) and Markdown."""

from __future__ import annotations

import json

from reconciler.core.changes import Plan
from reconciler.core.render import (
    attribute_rows,
    describe_overrides,
    render_json,
    render_markdown,
    render_text,
    summary_line,
)
from tests.builders import (
    connection,
    desired,
    instance,
    make_plan,
    observed,
    resource,
    secret_value,
    stored,
    stored_resource,
)


def _mixed() -> Plan:
    """One change of each action: create, update (secret), delete, and a resource update."""
    p, diags = make_plan(
        desired(
            (
                "acme",
                [
                    connection("acme", "stripe", version=2),
                    connection("acme", "quo"),
                    connection(
                        "acme",
                        "postmark",
                        resources=[resource("sender_emails", "a@x", email="a@x", name="New")],
                    ),
                ],
            )
        ),
        observed(
            instance("acme", "stripe", stored()),
            instance("acme", "anthropic", stored(provider="anthropic")),
            instance(
                "acme",
                "postmark",
                stored(provider="postmark"),
                resources=[stored_resource("sender_emails", "a@x", email="a@x", name="Old")],
            ),
        ),
    )
    assert not diags.errors
    return p


def test_text_shows_each_change_with_its_symbol_and_attributes() -> None:
    text = render_text(_mixed())
    assert "Reconciler will perform the following actions:" in text
    assert "  # acme/quo will be created (not in the database)\n  + acme/quo\n" in text
    assert "  # acme/anthropic will be destroyed (no longer in the manifest)" in text
    assert "  - acme/anthropic\n" in text
    assert "~ credentials.api_key = (sensitive) -> (sensitive)  (value changed)" in text
    assert '      ~ name  = "Old" -> "New"\n' in text
    # an update shows only what changes
    stripe = text.split("  ~ acme/stripe\n", 1)[1].split("\n\n", 1)[0]
    assert "owner" not in stripe
    assert text.endswith("Plan: 1 to create, 2 to update, 1 to delete.\n")


def test_a_create_or_delete_shows_every_attribute_row_on_its_one_side() -> None:
    """The text of a create (every row ``+``) and of a delete (every row ``-``) is built
    without the rows' comparison; it is exactly what the rows say, aligned."""
    text = render_text(_mixed())
    for change in _mixed().changes:
        if change.before is not None and change.after is not None:
            continue
        rows = attribute_rows(change)
        width = max(len(r.name) for r in rows)
        expected = [
            f"      + {r.name.ljust(width)} = {r.after}"
            if r.before is None
            else f"      - {r.name.ljust(width)} = {r.before}"
            for r in rows
        ]
        assert all((r.before is None) != (r.after is None) for r in rows)
        block = text.split(f"  {change.action.symbol} {change.address}\n", 1)[1].split("\n\n")[0]
        assert block.splitlines() == expected


def test_text_of_an_empty_plan() -> None:
    p = Plan(changes=())
    assert render_text(p) == "No changes. The database matches the manifests.\n"
    assert summary_line(p) == "No changes. The database matches the manifests."


def test_text_names_overridden_base_urls_first() -> None:
    text = render_text(Plan(changes=()), overrides={"stripe": "http://127.0.0.1:1"})
    assert text.startswith(
        "Note: stripe health checks and API calls go to http://127.0.0.1:1 "
        "(RECONCILER_BASE_URL_STRIPE is set)."
    )


def test_overrides_of_many_providers_are_said_once() -> None:
    sim = "http://127.0.0.1:8765"
    one_simulator = {p: f"{sim}/{p}" for p in ("stripe", "quo", "mapbox")}
    text = render_text(Plan(changes=()), overrides=one_simulator)
    assert text.splitlines()[0] == (
        f"Note: health checks and API calls of mapbox, quo, stripe go to {sim}/<provider> "
        "(RECONCILER_BASE_URL_<NAME> is set)."
    )
    assert text.count("Note:") == 1
    elsewhere = {"stripe": "http://a.example", "quo": "http://b.example/q"}
    assert describe_overrides(elsewhere) == (
        "health checks and API calls of quo, stripe go to quo to http://b.example/q; "
        "stripe to http://a.example (RECONCILER_BASE_URL_<NAME> is set)"
    )


def test_json_has_the_spec_fields_and_no_secret() -> None:
    p = _mixed()
    out = render_json(p, overrides={})
    doc = json.loads(out)
    assert doc["format_version"] == "1.1"
    assert doc["summary"] == {"create": 1, "update": 2, "delete": 1, "adopt": 0, "orphan": 0}
    by_address = {c["address"]: c for c in doc["changes"]}
    stripe = by_address["acme/stripe"]
    assert (stripe["action"], stripe["reason_code"]) == ("update", "credentials_changed")
    assert stripe["changed"] == ["credentials.api_key"]
    assert stripe["after"]["credentials"] == {"api_key": "(sensitive)"}
    assert stripe["credential_variables"] == {"api_key": "ACME_STRIPE_API_KEY"}
    sender = by_address["acme/postmark/sender_emails/a@x"]
    assert (sender["resource_kind"], sender["identity"]) == ("sender_emails", "a@x")
    assert sender["before"] == {"email": "a@x", "name": "Old"}
    assert all(c["reason"] for c in doc["changes"])
    assert secret_value("acme", "stripe", "api_key", 2) not in out
    assert out == render_json(p, overrides={})  # deterministic


def test_markdown_warns_about_deletions_and_counts_per_organization() -> None:
    md = render_markdown(_mixed())
    assert md.startswith("## Reconciler plan\n")
    assert "- :warning: **acme/anthropic** will be destroyed (no longer in the manifest)" in md
    assert "| acme | 1 | 2 | 1 | 0 | 0 |" in md
    assert "<details><summary><b>acme</b>: 4 change(s)</summary>\n\n```diff\n" in md
    assert "\n+ acme/quo  # not in the database\n" in md


def test_markdown_is_cut_to_the_limit_with_a_count_of_what_is_left_out() -> None:
    senders = [resource("sender_emails", f"s{i}@x", email=f"s{i}@x") for i in range(300)]
    want = desired(("acme", [connection("acme", "postmark", resources=senders)]))
    p, _ = make_plan(want)
    md = render_markdown(p, limit=5_000)
    assert len(md) <= 5_000
    assert "more change(s) not shown" in md
    assert md.count("```") % 2 == 0  # every code block is closed


def test_adopt_and_orphan_have_their_own_symbols_and_summary() -> None:
    p, _ = make_plan(
        desired(("acme", [connection("acme", "stripe", adopt=True)])),
        observed(
            instance("acme", "stripe", stored(managed_by="ui"), managed_by="ui"),
            instance("acme", "quo", stored(provider="quo", deletion_policy="orphan")),
        ),
    )
    text = render_text(p)
    assert "  # acme/stripe will be adopted (taken under management)" in text
    assert "  < acme/stripe\n" in text
    assert '      - managed_by          = "ui"\n' in text  # what it was managed by goes
    assert "  > acme/quo\n" in text
    assert text.endswith("Plan: 0 to create, 0 to update, 0 to delete. 1 to adopt, 1 to orphan.\n")
    md = render_markdown(p)
    assert "| acme | 0 | 0 | 0 | 1 | 1 |" in md
