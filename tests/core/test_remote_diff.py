"""The provider-side diff as a truth table: declared x remembered x held at the provider."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.catalog import ResourceKind, load_catalog
from reconciler.core.desired import DesiredResource
from reconciler.core.remote import (
    ChangeSource,
    RemoteAction,
    RemoteObject,
    StoredRemote,
    create_idempotency_key,
    idempotency_key,
    is_signing_secret_field,
    missing_at_provider,
    resource_address,
    signing_secret_field,
)
from reconciler.core.remote_diff import RemoteDiff, diff_remote

CATALOG = load_catalog()
URL = "https://acme.example/hooks"
CONN = "acme/stripe"
ADDRESS = resource_address(CONN, "webhook_endpoints", URL)


def kind(provider: str, name: str) -> ResourceKind:
    found = CATALOG.providers[provider].resource_kind(name)
    assert found is not None
    return found


STRIPE = kind("stripe", "webhook_endpoints")
QUO = kind("quo", "webhooks")
POSTMARK = kind("postmark", "webhooks")


def declared(events: tuple[str, ...] = ("invoice.paid",), **extra: Any) -> DesiredResource:
    return DesiredResource("webhook_endpoints", URL, {"url": URL, "events": list(events), **extra})


def fields(events: tuple[str, ...] = ("invoice.paid",), **extra: Any) -> dict[str, Any]:
    return {"url": URL, "events": list(events), "description": None, **extra}


def stored(remote_id: str | None = "we_1", generation: int = 0, **kw: Any) -> StoredRemote:
    values = kw.pop("fields", fields())
    return StoredRemote("webhook_endpoints", URL, remote_id, values, generation, **kw)


def held(remote_id: str = "we_1", marker: str | None = ADDRESS, **kw: Any) -> RemoteObject:
    values = kw.pop("fields", fields())
    identity = kw.pop("identity", URL)
    return RemoteObject("stripe", "webhook_endpoints", remote_id, identity, values, marker)


def diff(
    want: list[DesiredResource], rows: list[StoredRemote], remote: list[RemoteObject] | None
) -> RemoteDiff:
    return diff_remote(
        connection=CONN, provider="stripe", kind=STRIPE, desired=want, stored=rows, remote=remote
    )


def actions(result: RemoteDiff) -> list[tuple[str, str | None]]:
    return [(c.action.value, c.remote_id) for c in result.changes]


# (declared, stored, held at the provider) -> changes
TABLE = [
    pytest.param([declared()], [], [], [("create", None)], id="new"),
    pytest.param([declared()], [stored()], [held()], [], id="in-sync"),
    pytest.param([declared()], [stored()], [], [("create", None)], id="deleted-at-provider"),
    pytest.param(
        [declared()],
        [stored()],
        [held(fields=fields(("charge.failed",)))],
        [("update", "we_1")],
        id="changed-at-provider",
    ),
    pytest.param(
        [declared(("charge.failed",))], [stored()], [held()], [("update", "we_1")], id="manifest"
    ),
    pytest.param([], [stored()], [held()], [("delete", "we_1")], id="no-longer-declared"),
    pytest.param([], [stored()], [], [("delete", None)], id="gone-both-ways"),
    pytest.param([], [], [held(marker=None)], [], id="foreign-untouched"),
    pytest.param([declared()], [], [held(marker=None)], [], id="foreign-conflict"),
    pytest.param([declared(adopt=True)], [], [held(marker=None)], [("adopt", "we_1")], id="adopt"),
    pytest.param(
        [declared()],
        [stored()],
        [held(), held("we_2", marker=None)],
        [],
        id="foreign-twin-of-ours-ignored",
    ),
    pytest.param(
        [declared()],
        [stored()],
        [held(), held("we_2")],
        [("delete", "we_2")],
        id="duplicate-of-ours-deleted",
    ),
    pytest.param([declared()], [], [held()], [("create", None)], id="interrupted-create-replayed"),
]


@pytest.mark.parametrize(("want", "rows", "remote", "expected"), TABLE)
def test_truth_table(
    want: list[DesiredResource],
    rows: list[StoredRemote],
    remote: list[RemoteObject],
    expected: list[tuple[str, str | None]],
) -> None:
    assert actions(diff(want, rows, remote)) == expected


def test_deleted_at_the_provider_says_so_and_that_the_secret_changes() -> None:
    (change,) = diff([declared()], [stored(generation=2)], []).changes
    assert change.action is RemoteAction.CREATE
    assert change.source is ChangeSource.PROVIDER
    assert "deleted at the provider (was we_1)" in change.reason
    assert "new signing secret" in change.reason
    assert change.issues_secret is True
    assert (change.replaces, change.generation) == ("we_1", 3)


def test_sources_tell_manifest_from_provider() -> None:
    at_provider = diff([declared()], [stored()], [held(fields=fields(("x.y",)))]).changes[0]
    assert at_provider.source is ChangeSource.PROVIDER
    assert at_provider.reason == "changed at the provider: events (updated in place)"
    in_manifest = diff([declared(("x.y",))], [stored()], [held()]).changes[0]
    assert in_manifest.source is ChangeSource.MANIFEST
    both = diff([declared(("x.y",))], [stored()], [held(fields=fields(("a.b",)))]).changes[0]
    assert both.source is ChangeSource.BOTH
    assert both.changed == ("events",)


def test_event_order_and_empty_description_are_no_change() -> None:
    want = declared(("b.c", "a.b"), description="")
    have = held(fields=fields(("a.b", "b.c")))
    assert diff([want], [stored(fields=fields(("a.b", "b.c")))], [have]).changes == ()


def test_a_url_changed_at_the_provider_is_restored_in_place() -> None:
    moved = held(
        identity="https://elsewhere.example/x",
        fields=fields() | {"url": "https://elsewhere.example/x"},
    )
    (change,) = diff([declared()], [stored()], [moved]).changes
    assert (change.action, change.remote_id, change.changed) == (
        RemoteAction.UPDATE,
        "we_1",
        ("url",),
    )


def test_a_conflict_names_the_object_and_the_way_out() -> None:
    result = diff([declared()], [], [held(marker=None)])
    assert result.changes == ()
    (conflict,) = result.conflicts
    assert conflict.address == ADDRESS
    assert conflict.remote_id == "we_1"
    assert "we_1" in conflict.message
    assert "not created by the reconciler" in conflict.message
    assert "adopt: true" in conflict.message


def test_adopting_keeps_the_id_and_takes_the_secret_from_the_variable() -> None:
    want = declared(("charge.failed",), adopt=True, signing_secret="${ACME_WHSEC}")
    (change,) = diff([want], [], [held(marker=None)]).changes
    assert change.action is RemoteAction.ADOPT
    assert change.remote_id == "we_1"
    assert change.changed == ("events",)  # updated in place after adopting
    assert change.secret_variable == "ACME_WHSEC"
    assert change.issues_secret is False


def test_adopting_two_objects_of_one_identity_is_refused() -> None:
    result = diff([declared(adopt=True)], [], [held("we_1", None), held("we_2", None)])
    assert result.changes == ()
    assert "adopting needs exactly one" in result.conflicts[0].message


def test_without_refresh_only_our_tables_count() -> None:
    assert actions(diff([declared()], [stored()], None)) == []
    assert actions(diff([declared(("x.y",))], [stored()], None)) == [("update", "we_1")]
    assert actions(diff([], [stored()], None)) == [("delete", "we_1")]
    assert actions(diff([declared()], [], None)) == [("create", None)]


def test_quo_webhooks_have_no_update_so_a_change_replaces() -> None:
    identity = f"messages:{URL}"
    want = DesiredResource(
        "webhooks", identity, {"type": "messages", "url": URL, "events": ["message.received"]}
    )
    was = {"type": "messages", "url": URL, "events": ["message.delivered"], "label": None}
    row = StoredRemote("webhooks", identity, "WH1", was, 0)
    obj = RemoteObject("quo", "webhooks", "WH1", identity, was)
    result = diff_remote(
        connection="acme/quo", provider="quo", kind=QUO, desired=[want], stored=[row], remote=[obj]
    )
    (change,) = result.changes
    assert change.action is RemoteAction.REPLACE
    assert change.remote_id == change.replaces == "WH1"
    assert change.generation == 1
    assert "new signing secret" in change.reason


def test_postmark_webhooks_update_triggers_in_place() -> None:
    identity = f"outbound:{URL}"
    spec = {"url": URL, "message_stream": "outbound", "triggers": ["open", "bounce"]}
    want = DesiredResource("webhooks", identity, spec)
    was = {**spec, "triggers": ["open"]}
    result = diff_remote(
        connection="acme/postmark",
        provider="postmark",
        kind=POSTMARK,
        desired=[want],
        stored=[StoredRemote("webhooks", identity, "7", was)],
        remote=[RemoteObject("postmark", "webhooks", "7", identity, was)],
    )
    assert actions(result) == [("update", "7")]
    assert result.changes[0].issues_secret is False


def test_an_interrupted_postmark_create_is_recorded_not_duplicated() -> None:
    identity = f"outbound:{URL}"
    spec = {"url": URL, "message_stream": "outbound", "triggers": ["open"]}
    want = DesiredResource("webhooks", identity, spec)
    pending = StoredRemote("webhooks", identity, None, spec)
    result = diff_remote(
        connection="acme/postmark",
        provider="postmark",
        kind=POSTMARK,
        desired=[want],
        stored=[pending],
        remote=[RemoteObject("postmark", "webhooks", "7", identity, spec)],
    )
    assert actions(result) == [("adopt", "7")]


def test_idempotency_keys_repeat_for_a_retry_and_change_for_a_re_create() -> None:
    first = diff([declared()], [], []).changes[0]
    retry = diff([declared()], [], [held()]).changes[0]  # crashed after Stripe answered
    assert create_idempotency_key("acme", first) == create_idempotency_key("acme", retry)
    recreate = diff([declared()], [stored()], []).changes[0]
    assert create_idempotency_key("acme", recreate) != create_idempotency_key("acme", first)
    again = diff([declared()], [stored(generation=1)], []).changes[0]
    assert create_idempotency_key("acme", again) != create_idempotency_key("acme", recreate)
    other_org = create_idempotency_key("globex", first)
    assert other_org != create_idempotency_key("acme", first)
    key = create_idempotency_key("acme", first)
    assert len(key) <= 255 and key.startswith("reconciler-")


def test_idempotency_key_depends_on_the_desired_state_only_by_value() -> None:
    a = idempotency_key(
        organization="acme",
        address=ADDRESS,
        fields={"events": ["b", "a"]},
        replaces=None,
        generation=0,
    )
    b = idempotency_key(
        organization="acme",
        address=ADDRESS,
        fields={"events": ["a", "b"]},
        replaces=None,
        generation=0,
    )
    c = idempotency_key(
        organization="acme",
        address=ADDRESS,
        fields={"events": ["a"]},
        replaces=None,
        generation=0,
    )
    assert a == b != c


def test_quo_numbers_missing_from_the_workspace_are_named() -> None:
    numbers = kind("quo", "phone_numbers")
    want = [
        DesiredResource("phone_numbers", "+15555550100", {"number": "+15555550100"}),
        DesiredResource("phone_numbers", "+15555550199", {"number": "+15555550199"}),
    ]
    have = [RemoteObject("quo", "phone_numbers", "PN1", "+15555550100", {})]
    (missing,) = missing_at_provider("acme/quo", numbers, want, have)
    assert missing.address == "acme/quo/phone_numbers/+15555550199"
    assert "+15555550199 is not a number of this quo workspace" in missing.message


def test_signing_secret_fields_fit_the_credentials_table_and_name_the_resource() -> None:
    long_url = "https://acme.example/" + "x" * 400
    name = signing_secret_field("webhook_endpoints", long_url)
    assert len(name) <= 64
    assert name.startswith("webhook_endpoints.signing_secret.")
    assert name == signing_secret_field("webhook_endpoints", long_url)
    assert name != signing_secret_field("webhook_endpoints", URL)
    assert is_signing_secret_field(name)
    assert not is_signing_secret_field("api_key")
