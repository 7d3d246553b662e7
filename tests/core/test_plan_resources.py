"""Resource planning, row by row: which reason and code a reviewer reads for each way a resource
moves, and what a stored resource looks like. Pure."""

from __future__ import annotations

import pytest

from reconciler.core.desired import DesiredConnection, DesiredResource
from reconciler.core.plan_resources import plan_resources, resource_spec
from tests.builders import connection, instance, resource, stored, stored_resource

A = "a@x"


def _postmark(*resources: DesiredResource) -> DesiredConnection:
    return connection("acme", "postmark", resources=resources)


@pytest.mark.parametrize(
    ("want_default", "have_default", "want_name", "reason", "code", "changed"),
    [
        (True, False, "A", "becomes the default sender_emails", "default_changed", ("default",)),
        (
            False,
            True,
            "A",
            "is no longer the default sender_emails",
            "default_changed",
            ("default",),
        ),
        (False, False, "B", "fields changed", "spec_changed", ("spec",)),
        (
            True,
            False,
            "B",
            "becomes the default sender_emails",
            "spec_changed",
            ("spec", "default"),
        ),
        (False, True, "B", "fields changed", "spec_changed", ("spec", "default")),
    ],
)
def test_a_changed_resource_says_what_moved(
    want_default: bool,
    have_default: bool,
    want_name: str,
    reason: str,
    code: str,
    changed: tuple[str, ...],
) -> None:
    conn = _postmark(resource("sender_emails", A, is_default=want_default, email=A, name=want_name))
    have = stored_resource("sender_emails", A, is_default=have_default, email=A, name="A")
    [change] = plan_resources(
        conn,
        instance("acme", "postmark", stored(provider="postmark"), resources=[have]),
        force_create=False,
    )
    assert (change.action.value, change.reason, change.reason_code) == ("update", reason, code)
    assert change.changed_names() == changed


def test_an_unchanged_resource_plans_nothing_and_a_ui_one_is_adopted_not_created() -> None:
    conn = _postmark(
        resource("sender_emails", A, email=A),
        resource("sender_emails", "u@x", email="u@x"),
    )
    inst = instance(
        "acme",
        "postmark",
        stored(provider="postmark"),
        resources=[
            stored_resource("sender_emails", A, email=A),
            stored_resource("sender_emails", "u@x", managed_by="ui", email="u@x", name="UI"),
        ],
    )
    [change] = plan_resources(conn, inst, force_create=False)
    assert (change.address, change.action.value, change.reason_code) == (
        "acme/postmark/sender_emails/u@x",
        "adopt",
        "adopt",
    )
    assert change.changed_names() == ("managed_by", "spec")


def test_a_new_connection_creates_every_resource_and_deletes_nothing() -> None:
    conn = _postmark(resource("sender_emails", A, email=A))
    leftover = stored_resource("sender_emails", "old@x", email="old@x")
    inst = instance("acme", "postmark", resources=[leftover])
    changes = plan_resources(conn, inst, force_create=True)
    assert [(c.address, c.action.value, c.reason) for c in changes] == [
        ("acme/postmark/sender_emails/a@x", "create", "not in the database")
    ]


@pytest.mark.parametrize(
    ("spec", "is_default", "stored_as"),
    [
        ({"email": A}, False, {"email": A}),
        ({"email": A}, True, {"email": A, "default": True}),
        ({"email": A, "default": False}, False, {"email": A, "default": False}),
        ({"email": A, "default": True}, False, {"email": A, "default": False}),
    ],
)
def test_a_stored_resource_keeps_default_only_where_the_kind_has_one(
    spec: dict[str, object], is_default: bool, stored_as: dict[str, object]
) -> None:
    made = resource_spec("sender_emails", A, spec, is_default)
    assert (dict(made.spec), made.is_default) == (stored_as, is_default)
