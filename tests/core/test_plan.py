"""The planner as a truth table: (desired x observed) -> (address, action, changed), one row per
rule of SPEC sections 3 and 6. Pure: no database, no network, no files but the catalog."""

from __future__ import annotations

import pytest

from reconciler.core.changes import Action, Attr, ConnectionSpec, Kind, ResourceSpec, Unmanaged
from reconciler.core.desired import Desired
from reconciler.core.state import Observed
from tests.builders import (
    OWNER,
    catalog,
    connection,
    desired,
    fingerprint,
    instance,
    make_plan,
    messages,
    observed,
    resource,
    rows,
    secret_value,
    stored,
    stored_resource,
    variable,
)

ACME_STRIPE = ("acme", [connection("acme", "stripe")])

CASES: list[tuple[str, Desired, Observed, list[tuple[str, str, tuple[str, ...]]]]] = [
    (
        "create: in the manifest, not in the database",
        desired(ACME_STRIPE),
        observed(),
        [("acme/stripe", "create", ("instance", "connection", "credentials.api_key"))],
    ),
    (
        "unchanged: same owner, secret, settings",
        desired(ACME_STRIPE),
        observed(instance("acme", "stripe", stored())),
        [],
    ),
    (
        "update: the secret behind a credential changed",
        desired(("acme", [connection("acme", "stripe", version=2)])),
        observed(instance("acme", "stripe", stored())),
        [("acme/stripe", "update", ("credentials.api_key",))],
    ),
    (
        "update: a new owner re-stores every credential",
        desired(("acme", [connection("acme", "stripe", owner="new@acme.example")])),
        observed(instance("acme", "stripe", stored())),
        [("acme/stripe", "update", ("owner", "credentials.api_key"))],
    ),
    (
        "update: a failed first connection kept no credential and is retried",
        desired(ACME_STRIPE),
        observed(instance("acme", "stripe", stored(fields=(), status="error"), status="error")),
        [("acme/stripe", "update", ("credentials.api_key",))],
    ),
    (
        "update: deactivated (mapping providers' active toggle)",
        desired(("acme", [connection("acme", "mapbox", active=False)])),
        observed(instance("acme", "mapbox", stored(provider="mapbox"))),
        [("acme/mapbox", "update", ("active",))],
    ),
    (
        "update: reactivated",
        desired(("acme", [connection("acme", "mapbox")])),
        observed(instance("acme", "mapbox", stored(provider="mapbox"), status="inactive")),
        [("acme/mapbox", "update", ("active",))],
    ),
    (
        "update: deletion settings changed",
        desired(("acme", [connection("acme", "stripe", prevent_destroy=True)])),
        observed(instance("acme", "stripe", stored())),
        [("acme/stripe", "update", ("settings",))],
    ),
    (
        "delete: managed, no longer in the manifest",
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance("acme", "stripe", stored()),
            instance("acme", "postmark", stored(provider="postmark")),
        ),
        [("acme/stripe", "delete", ("instance", "connection", "credentials.api_key"))],
    ),
    (
        "orphan: deletionPolicy orphan keeps the data",
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance("acme", "stripe", stored(deletion_policy="orphan")),
            instance("acme", "postmark", stored(provider="postmark")),
        ),
        [("acme/stripe", "orphan", ("managed_by",))],
    ),
    (
        "adopt: made in the UI, the manifest says adopt: true",
        desired(("acme", [connection("acme", "stripe", adopt=True)])),
        observed(instance("acme", "stripe", stored(managed_by="ui", fields=()), managed_by="ui")),
        [("acme/stripe", "adopt", ("managed_by", "credentials.api_key"))],
    ),
    (
        "allowEmpty: an empty manifest tears down what it managed",
        desired(("acme", []), allow_empty=["acme"]),
        observed(instance("acme", "stripe", stored())),
        [("acme/stripe", "delete", ("instance", "connection", "credentials.api_key"))],
    ),
    (
        "no allowEmpty: an empty manifest tears nothing down",
        desired(("acme", [])),
        observed(instance("acme", "stripe", stored())),
        [],
    ),
    (
        "unmanaged rows: a UI connection of another user is left alone",
        desired(ACME_STRIPE),
        observed(
            instance(
                "acme",
                "stripe",
                stored(),
                stored(owner="someone@acme.example", managed_by="ui", id=2),
            )
        ),
        [],
    ),
    (
        "unmanaged rows: dropping the provider keeps another user's UI connection",
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance(
                "acme",
                "stripe",
                stored(owner="someone@acme.example", managed_by="ui", id=2),
                managed_by="ui",
            ),
            instance("acme", "postmark", stored(provider="postmark")),
        ),
        [],
    ),
    (
        "other organizations' rows are not this plan's",
        desired(ACME_STRIPE),
        observed(
            instance("acme", "stripe", stored()),
            instance("globex", "stripe", stored(org="globex")),
        ),
        [],
    ),
    (
        "resources: created with their connection",
        desired(
            (
                "acme",
                [
                    connection(
                        "acme",
                        "postmark",
                        resources=[
                            resource("sender_emails", "b@acme.example", email="b@acme.example")
                        ],
                    )
                ],
            )
        ),
        observed(),
        [
            ("acme/postmark", "create", ("instance", "connection", "credentials.api_key")),
            ("acme/postmark/sender_emails/b@acme.example", "create", ("spec",)),
        ],
    ),
    (
        "resources: a field changed, one removed, one added",
        desired(
            (
                "acme",
                [
                    connection(
                        "acme",
                        "postmark",
                        resources=[
                            resource("sender_emails", "a@x", email="a@x", name="New"),
                            resource("sender_emails", "c@x", email="c@x"),
                        ],
                    )
                ],
            )
        ),
        observed(
            instance(
                "acme",
                "postmark",
                stored(provider="postmark"),
                resources=[
                    stored_resource("sender_emails", "a@x", email="a@x", name="Old"),
                    stored_resource("sender_emails", "b@x", email="b@x"),
                ],
            )
        ),
        [
            ("acme/postmark/sender_emails/a@x", "update", ("spec",)),
            ("acme/postmark/sender_emails/b@x", "delete", ("spec",)),
            ("acme/postmark/sender_emails/c@x", "create", ("spec",)),
        ],
    ),
    (
        "resources: only the default moved",
        desired(
            (
                "acme",
                [
                    connection(
                        "acme",
                        "postmark",
                        resources=[resource("sender_emails", "a@x", is_default=True, email="a@x")],
                    )
                ],
            )
        ),
        observed(
            instance(
                "acme",
                "postmark",
                stored(provider="postmark"),
                resources=[stored_resource("sender_emails", "a@x", email="a@x")],
            )
        ),
        [("acme/postmark/sender_emails/a@x", "update", ("default",))],
    ),
    (
        "resources: a UI-made resource is not the manifest's to delete",
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance(
                "acme",
                "postmark",
                stored(provider="postmark"),
                resources=[stored_resource("sender_emails", "u@x", managed_by="ui", email="u@x")],
            )
        ),
        [],
    ),
    (
        "resources: torn down with their connection",
        desired(("acme", [connection("acme", "stripe")])),
        observed(
            instance("acme", "stripe", stored()),
            instance(
                "acme",
                "anthropic",
                stored(provider="anthropic"),
                resources=[stored_resource("model", value="claude-haiku-4-5")],
            ),
        ),
        [
            ("acme/anthropic", "delete", ("instance", "connection", "credentials.api_key")),
            ("acme/anthropic/model", "delete", ("spec",)),
        ],
    ),
]


@pytest.mark.parametrize(("rule", "want", "have", "expected"), CASES, ids=[c[0] for c in CASES])
def test_truth_table(
    rule: str,
    want: Desired,
    have: Observed,
    expected: list[tuple[str, str, tuple[str, ...]]],
) -> None:
    p, diags = make_plan(want, have)
    assert not diags.errors, messages(diags)
    assert rows(p) == expected


def test_prevent_destroy_refuses_the_plan() -> None:
    p, diags = make_plan(
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance("acme", "stripe", stored(prevent_destroy=True)),
            instance("acme", "postmark", stored(provider="postmark")),
        ),
    )
    assert "acme/stripe has preventDestroy: true" in messages(diags)
    assert rows(p) == []


def test_prevent_destroy_does_not_stop_an_orphan() -> None:
    p, diags = make_plan(
        desired(("acme", [connection("acme", "postmark")])),
        observed(
            instance("acme", "stripe", stored(prevent_destroy=True, deletion_policy="orphan")),
            instance("acme", "postmark", stored(provider="postmark")),
        ),
    )
    assert not diags.errors
    assert rows(p) == [("acme/stripe", "orphan", ("managed_by",))]


def test_unadopted_unmanaged_instance_refuses_the_plan() -> None:
    _, diags = make_plan(
        desired(ACME_STRIPE),
        observed(instance("acme", "stripe", stored(managed_by="ui"), managed_by="ui")),
    )
    assert "acme/stripe already exists and is not managed by a manifest" in messages(diags)
    assert "adopt: true" in messages(diags)


def test_an_empty_instance_is_created_into_only_when_a_manifest_made_it() -> None:
    # a half-finished create (instance row, no connection) is finished by the next apply
    p, diags = make_plan(desired(ACME_STRIPE), observed(instance("acme", "stripe")))
    assert not diags.errors and rows(p)[0][:2] == ("acme/stripe", "create")
    # an empty instance made in the UI is not the manifest's to fill without adopt: true
    _, diags = make_plan(
        desired(ACME_STRIPE), observed(instance("acme", "stripe", managed_by="ui"))
    )
    assert "add 'adopt: true'" in messages(diags)


def test_a_dependency_cannot_be_torn_down_under_its_dependent() -> None:
    deps = catalog("catalog_deps")
    p, diags = make_plan(
        desired(("acme", [connection("acme", "invoicing")])),
        observed(
            instance("acme", "ledger", stored(provider="ledger")),
            instance("acme", "invoicing", stored(provider="invoicing")),
        ),
        cat=deps,
    )
    assert "acme/ledger cannot be torn down while acme/invoicing" in messages(diags)
    # both removed together: allowed
    p, diags = make_plan(
        desired(("acme", []), allow_empty=["acme"]),
        observed(
            instance("acme", "ledger", stored(provider="ledger")),
            instance("acme", "invoicing", stored(provider="invoicing")),
        ),
        cat=deps,
    )
    assert not diags.errors
    assert [(a, x) for a, x, _ in rows(p)] == [
        ("acme/invoicing", "delete"),
        ("acme/ledger", "delete"),
    ]


def test_inactive_provider_is_created_inactive_and_unchecked() -> None:
    p, _ = make_plan(desired(("acme", [connection("acme", "mapbox", active=False)])))
    (change,) = p.changes
    assert change.action is Action.CREATE
    assert isinstance(change.after, ConnectionSpec)
    assert (change.after.active, change.after.status) == (False, "inactive")


def test_provider_filter_plans_only_those_providers() -> None:
    want = desired(("acme", [connection("acme", "stripe"), connection("acme", "postmark")]))
    p, _ = make_plan(want, providers=frozenset({"postmark"}))
    assert [c.address for c in p.changes] == ["acme/postmark"]


def test_notes_name_unmanaged_connections_unhealthy_ones_and_empty_manifests() -> None:
    p, _ = make_plan(
        desired(ACME_STRIPE, ("globex", [])),
        observed(
            instance(
                "acme",
                "stripe",
                stored(health="unhealthy"),
                stored(owner="ui@acme.example", managed_by="ui", id=2),
            ),
            instance("globex", "stripe", stored(org="globex")),
        ),
    )
    kinds = {(n.address, n.kind) for n in p.notes}
    assert kinds == {
        ("acme/stripe", "unhealthy"),
        ("acme/stripe/ui@acme.example", "unmanaged"),
        ("globex", "empty_manifest"),
    }


def test_a_connection_change_carries_what_apply_needs() -> None:
    p, _ = make_plan(
        desired(("acme", [connection("acme", "stripe", version=2)])),
        observed(instance("acme", "stripe", stored())),
    )
    (change,) = p.changes
    assert change.kind is Kind.CONNECTION
    assert change.changed == frozenset({Attr.CREDENTIALS}) and change.credentials == ("api_key",)
    assert isinstance(change.before, ConnectionSpec) and isinstance(change.after, ConnectionSpec)
    assert change.after.owner == OWNER and change.after.active
    (ref,) = change.after.credentials
    assert ref.variable == variable("acme", "stripe", "api_key")
    assert ref.fingerprints == {"k1": fingerprint(secret_value("acme", "stripe", "api_key", 2))}
    assert change.reason_code == "credentials_changed"
    assert p.variables() == [variable("acme", "stripe", "api_key")]


def test_adopt_and_resource_payloads() -> None:
    p, _ = make_plan(
        desired(
            (
                "acme",
                [
                    connection(
                        "acme",
                        "anthropic",
                        adopt=True,
                        resources=[resource("model", value="claude-haiku-4-5")],
                    )
                ],
            )
        ),
        observed(
            instance(
                "acme", "anthropic", stored(provider="anthropic", managed_by="ui"), managed_by="ui"
            )
        ),
    )
    adopt, model = p.changes
    assert adopt.before == Unmanaged("ui", "active", (OWNER,))
    assert model.kind is Kind.RESOURCE
    assert model.after == ResourceSpec("model", "model", {"value": "claude-haiku-4-5"}, False)
    assert model.address == "acme/anthropic/model"


def test_an_adopted_connection_is_not_noted_as_unmanaged() -> None:
    p, _ = make_plan(
        desired(("acme", [connection("acme", "stripe", adopt=True)])),
        observed(instance("acme", "stripe", stored(managed_by="ui"), managed_by="ui")),
    )
    assert [n.kind for n in p.notes] == []
    p, _ = make_plan(
        desired(("acme", [connection("acme", "stripe")])),
        observed(instance("acme", "stripe", stored(), stored(owner="ui@x", managed_by="ui", id=2))),
    )
    assert [n.kind for n in p.notes] == ["unmanaged"]


def test_same_inputs_same_plan() -> None:
    want = desired(ACME_STRIPE, ("globex", [connection("globex", "postmark")]))
    assert make_plan(want)[0] == make_plan(want)[0]
