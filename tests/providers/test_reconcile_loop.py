"""The pieces together against the simulator, with a dict standing in for our tables: refresh
(GET only), the pure diff, carrying out each change. What phase 2 wires into plan and apply."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.core.catalog import Catalog
from reconciler.core.desired import DesiredResource
from reconciler.core.remote import RemoteAction, StoredRemote
from reconciler.core.remote_diff import RemoteDiff, diff_remote
from reconciler.core.secret import Secret
from reconciler.providers import RateLimits, open_writes, provider_client
from reconciler.providers.effects import Effect, carry_out
from reconciler.providers.refresh import RefreshRequest, refresh
from reconciler.simulator import Simulator

KEY = "sk_test_loop"
URL = "https://acme.example/hooks/stripe"


class Tables:
    """What apply would commit: rows and stored secrets."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredRemote] = {}
        self.secrets: dict[str, Secret] = {}

    def record(self, effect: Effect) -> None:
        change = effect.change
        if change.action is RemoteAction.DELETE:
            self.rows.pop(change.identity, None)
            return
        assert effect.object is not None
        self.rows[change.identity] = StoredRemote(
            change.kind,
            change.identity,
            effect.object.remote_id,
            dict(effect.object.fields),
            change.generation,
            has_secret=change.identity in self.secrets or effect.secret is not None,
        )
        if effect.secret is not None:
            self.secrets[change.identity] = effect.secret


def declared(*events: str, **extra: Any) -> list[DesiredResource]:
    spec = {"url": URL, "events": list(events or ("invoice.paid",)), **extra}
    return [DesiredResource("webhook_endpoints", URL, spec)]


def plan(
    sim: Simulator, catalog: Catalog, tables: Tables, want: list[DesiredResource]
) -> RemoteDiff:
    provider = catalog.providers["stripe"]
    (result,) = refresh(
        [RefreshRequest(("acme", "stripe"), provider, {"api_key": Secret(KEY)})],
        environ=sim.env(),
    )
    assert result.error is None
    kind = provider.resource_kind("webhook_endpoints")
    assert kind is not None
    return diff_remote(
        connection="acme/stripe",
        provider="stripe",
        kind=kind,
        desired=want,
        stored=list(tables.rows.values()),
        remote=result.objects["webhook_endpoints"],
    )


def apply(
    sim: Simulator, catalog: Catalog, tables: Tables, diff: RemoteDiff, *, commit: bool = True
) -> list[Effect]:
    provider = catalog.providers["stripe"]
    kind = provider.resource_kind("webhook_endpoints")
    assert kind is not None

    async def main() -> list[Effect]:
        async with provider_client() as http:
            writes = open_writes(
                provider,
                {"api_key": Secret(KEY)},
                client=http,
                limits=RateLimits(),
                environ=sim.env(),
            )
            held = {o.remote_id: o for o in await writes.list("webhook_endpoints")}
            return [
                await carry_out(
                    writes, c, organization="acme", kind=kind, current=held.get(c.remote_id or "")
                )
                for c in diff.changes
            ]

    effects = asyncio.run(main())
    if commit:
        for effect in effects:
            tables.record(effect)
    return effects


def at_stripe(sim: Simulator) -> list[dict[str, Any]]:
    return sim.objects("stripe", "webhook_endpoints", KEY)


def test_create_then_nothing_then_repair_in_place(sim: Simulator, catalog: Catalog) -> None:
    tables = Tables()
    diff = plan(sim, catalog, tables, declared())
    assert [c.action for c in diff.changes] == [RemoteAction.CREATE]
    apply(sim, catalog, tables, diff)
    (endpoint,) = at_stripe(sim)
    assert tables.secrets[URL].reveal() == endpoint["secret"]
    assert plan(sim, catalog, tables, declared()) == RemoteDiff()  # "No changes."

    sim.change_object(
        "stripe", "webhook_endpoints", KEY, endpoint["id"], {"enabled_events": ["x.y"]}
    )
    (change,) = plan(sim, catalog, tables, declared()).changes
    assert (change.action, change.reason) == (
        RemoteAction.UPDATE,
        "changed at the provider: events (updated in place)",
    )
    apply(sim, catalog, tables, RemoteDiff((change,)))
    (repaired,) = at_stripe(sim)
    assert repaired["id"] == endpoint["id"]
    assert repaired["enabled_events"] == ["invoice.paid"]


def test_deleted_at_stripe_is_re_created_with_a_new_secret(
    sim: Simulator, catalog: Catalog
) -> None:
    tables = Tables()
    apply(sim, catalog, tables, plan(sim, catalog, tables, declared()))
    (first,) = at_stripe(sim)
    sim.delete_object("stripe", "webhook_endpoints", KEY, first["id"])
    (change,) = plan(sim, catalog, tables, declared()).changes
    assert change.action is RemoteAction.CREATE
    assert f"deleted at the provider (was {first['id']})" in change.reason
    apply(sim, catalog, tables, RemoteDiff((change,)))
    (second,) = at_stripe(sim)
    assert second["id"] != first["id"]  # not the replayed answer of the first create
    assert tables.secrets[URL].reveal() == second["secret"] != first["secret"]


def test_a_crash_after_stripe_answered_creates_nothing_twice(
    sim: Simulator, catalog: Catalog
) -> None:
    tables = Tables()
    diff = plan(sim, catalog, tables, declared())
    lost = apply(sim, catalog, tables, diff, commit=False)  # killed before the commit
    retry = plan(sim, catalog, tables, declared())
    assert [c.action for c in retry.changes] == [RemoteAction.CREATE]
    assert "interrupted apply" in retry.changes[0].reason
    apply(sim, catalog, tables, retry)
    (endpoint,) = at_stripe(sim)
    assert lost[0].object is not None and endpoint["id"] == lost[0].object.remote_id
    assert tables.secrets[URL].reveal() == endpoint["secret"]  # replayed, not lost
    assert plan(sim, catalog, tables, declared()) == RemoteDiff()


def test_dashboard_objects_conflict_until_adopted_and_keep_their_secret(
    sim: Simulator, catalog: Catalog
) -> None:
    made = sim.seed_object(
        "stripe", "webhook_endpoints", KEY, {"url": URL, "enabled_events[]": ["invoice.paid"]}
    )
    tables = Tables()
    refused = plan(sim, catalog, tables, declared())
    assert refused.changes == ()
    assert made["id"] in refused.conflicts[0].message
    adopt = plan(sim, catalog, tables, declared(adopt=True, signing_secret="${ACME_WHSEC}"))
    (change,) = adopt.changes
    assert (change.action, change.remote_id, change.secret_variable) == (
        RemoteAction.ADOPT,
        made["id"],
        "ACME_WHSEC",
    )
    (effect,) = apply(sim, catalog, tables, adopt)
    assert effect.secret is None  # no rotation
    (endpoint,) = at_stripe(sim)
    assert (endpoint["id"], endpoint["secret"]) == (made["id"], made["secret"])
    assert endpoint["metadata"]["managed_by"] == "reconciler"
    assert plan(sim, catalog, tables, declared(adopt=True)) == RemoteDiff()


def test_removed_from_the_manifest_deletes_only_ours(sim: Simulator, catalog: Catalog) -> None:
    tables = Tables()
    apply(sim, catalog, tables, plan(sim, catalog, tables, declared()))
    other = sim.seed_object(
        "stripe",
        "webhook_endpoints",
        KEY,
        {"url": "https://x.example/h", "enabled_events[]": ["*"]},
    )
    diff = plan(sim, catalog, tables, [])
    assert [c.action for c in diff.changes] == [RemoteAction.DELETE]
    apply(sim, catalog, tables, diff)
    assert [e["id"] for e in at_stripe(sim)] == [other["id"]]
