"""The plan-file codec: what is written is read back as the same Plan, old formats are
refused, and a file cannot make a reader show a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.changes import ConnectionSpec
from reconciler.core.errors import InputError, StalePlanError
from reconciler.core.planfile import (
    FORMAT_VERSION,
    SavedPlan,
    plan_to_json,
    saved_to_json,
    write_saved,
)
from reconciler.core.planfile_read import (
    change_from_json,
    plan_from_json,
    read_saved,
    saved_from_json,
)
from reconciler.core.render import render_text
from tests.builders import (
    connection,
    desired,
    fingerprints_of,
    instance,
    make_plan,
    observed,
    resource,
    stored,
    stored_resource,
)


def _saved() -> SavedPlan:
    want = desired(
        (
            "acme",
            [
                connection("acme", "stripe", version=2),
                connection("acme", "quo", adopt=True),
                connection(
                    "acme",
                    "postmark",
                    resources=[resource("sender_emails", "a@x", is_default=True, email="a@x")],
                ),
            ],
        )
    )
    p, diags = make_plan(
        want,
        observed(
            instance("acme", "stripe", stored()),
            instance("acme", "quo", stored(provider="quo", managed_by="ui"), managed_by="ui"),
            instance("acme", "anthropic", stored(provider="anthropic", deletion_policy="orphan")),
            instance(
                "acme",
                "postmark",
                stored(provider="postmark"),
                resources=[stored_resource("sender_emails", "b@x", email="b@x")],
            ),
        ),
    )
    assert not diags.errors
    fps = fingerprints_of(want)
    return SavedPlan(
        plan=p,
        catalog_digest="abc",
        fingerprints=fps,
        variables={k: f"{k[0]}_{k[1]}_{k[3]}".upper() for k in fps},
        database_existed=True,
        overrides={"stripe": "http://127.0.0.1:9"},
        git_commit="0123abc",
        catalog_dir="../catalog",
    )


def test_a_saved_plan_reads_back_as_the_same_values(tmp_path: Path) -> None:
    saved = _saved()
    path = tmp_path / "plan.json"
    write_saved(saved, path)
    assert read_saved(path) == saved
    assert render_text(read_saved(path).plan) == render_text(saved.plan)


def test_the_public_part_reads_back_without_fingerprints() -> None:
    saved = _saved()
    plan, version = plan_from_json(plan_to_json(saved.plan, overrides={}), "x")
    assert version == FORMAT_VERSION
    assert [c.address for c in plan.changes] == [c.address for c in saved.plan.changes]
    assert render_text(plan) == render_text(saved.plan)


def test_a_saved_plan_holds_no_absolute_path_and_no_secret() -> None:
    text = json.dumps(saved_to_json(_saved()))
    assert str(Path.cwd()) not in text and '"/' not in text
    assert "acme-stripe-api_key-v2" not in text  # the secret's value


def test_another_format_version_is_stale_for_apply() -> None:
    doc = saved_to_json(_saved())
    doc["format_version"] = "1.0"
    with pytest.raises(StalePlanError, match=r"format version 1\.0, this reconciler writes 1\.1"):
        saved_from_json(doc, "plan.json")


def test_another_major_version_is_refused_for_reading() -> None:
    with pytest.raises(InputError, match=r"plan format 2\.0 is not supported"):
        plan_from_json({"format_version": "2.0", "changes": []}, "plan.json")


@pytest.mark.parametrize(
    "doc",
    [[], {"format_version": "1.1"}, {"format_version": "1.1", "changes": [{"action": "create"}]}],
)
def test_what_is_not_a_plan_is_refused(doc: object) -> None:
    with pytest.raises(InputError):
        plan_from_json(doc, "plan.json")


def test_a_plan_without_its_saved_section_cannot_be_applied() -> None:
    with pytest.raises(InputError, match="not a saved plan"):
        saved_from_json(plan_to_json(_saved().plan, overrides={}), "plan.json")


def test_a_hand_written_credential_value_is_not_read() -> None:
    change = change_from_json(
        {
            "address": "acme/stripe",
            "action": "update",
            "after": {"owner": "a@x", "credentials": {"api_key": "sk_live_CANARY"}},
            "changed": ["credentials.api_key"],
        },
        "plan.json",
    )
    assert isinstance(change.after, ConnectionSpec)
    assert "sk_live_CANARY" not in repr(change)


def test_an_unknown_changed_attribute_is_refused() -> None:
    with pytest.raises(InputError, match="unknown changed attribute 'colour'"):
        change_from_json({"address": "a/b", "action": "update", "changed": ["colour"]}, "p")
