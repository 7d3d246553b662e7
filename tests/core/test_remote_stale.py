"""What a saved plan's provider steps assumed, against what the provider holds now (pure)."""

from __future__ import annotations

from typing import Any

from reconciler.core.catalog import load_catalog
from reconciler.core.changes import Action, Change, Kind, Plan
from reconciler.core.remote import RemoteAction, RemoteChange, RemoteObject
from reconciler.core.remote_stale import moved_at_provider

URL = "https://acme.example/h"
ADDRESS = f"acme/stripe/webhook_endpoints/{URL}"
CATALOG = load_catalog()


def step(action: RemoteAction, remote_id: str | None = None, **kw: Any) -> Plan:
    rc = RemoteChange(
        action, "stripe", "webhook_endpoints", URL, ADDRESS, "why", remote_id=remote_id, **kw
    )
    return Plan(
        (
            Change(
                ADDRESS,
                Action.UPDATE,
                Kind.RESOURCE,
                "acme",
                "stripe",
                "why",
                "test",
                remote=(rc,),
            ),
        )
    )


def held(*objects: RemoteObject) -> dict[tuple[str, str], dict[str, list[RemoteObject]]]:
    return {("acme", "stripe"): {"webhook_endpoints": list(objects)}}


def endpoint(rid: str, events: list[str], marker: str | None = None) -> RemoteObject:
    fields = {"url": URL, "events": events, "description": None}
    return RemoteObject("stripe", "webhook_endpoints", rid, URL, fields, marker)


def moved(plan: Plan, now: dict[tuple[str, str], dict[str, list[RemoteObject]]]) -> list[str]:
    return moved_at_provider(CATALOG, plan, now)


def test_an_update_needs_its_object_as_the_plan_saw_it() -> None:
    saw = {"url": URL, "events": ["a"], "description": None}
    plan = step(RemoteAction.UPDATE, "we_1", before=saw, after={**saw, "events": ["b"]})
    assert moved(plan, held(endpoint("we_1", ["a"]))) == []
    assert moved(plan, held()) == [f"{ADDRESS}: deleted at Stripe (we_1)"]
    assert moved(plan, held(endpoint("we_1", ["c"]))) == [
        f"{ADDRESS}: changed at Stripe (we_1: events)"
    ]


def test_a_delete_needs_only_its_object() -> None:
    plan = step(RemoteAction.DELETE, "we_1", before={"url": URL, "events": ["a"]})
    assert moved(plan, held(endpoint("we_1", ["changed"]))) == []
    assert moved(plan, held()) == [f"{ADDRESS}: deleted at Stripe (we_1)"]
    assert moved(step(RemoteAction.DELETE, None), held()) == []  # only forgotten


def test_a_create_needs_its_identity_free_unless_ours_to_replay() -> None:
    plan = step(RemoteAction.CREATE)
    assert moved(plan, held()) == []
    assert moved(plan, held(endpoint("we_9", ["a"]))) == [
        f"{ADDRESS}: an object with this identity appeared at Stripe (we_9)"
    ]
    # an object marked for this very resource: the create's Idempotency-Key replays it
    assert moved(plan, held(endpoint("we_2", ["a"], marker=ADDRESS))) == []


def test_a_connection_not_read_is_not_checked() -> None:
    assert moved(step(RemoteAction.UPDATE, "we_1", before={}), {}) == []
