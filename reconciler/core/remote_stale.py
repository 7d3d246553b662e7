"""Whether a saved plan's provider-side steps still fit what the providers hold (``apply
--plan``, SPEC section 8). Pure: the plan and what the providers answered come in, the words
naming what moved come out.

Each step says what it assumed: an update, replace, adopt or delete names the object it acts
on (``remote_id``) and, except a delete, the fields it saw there (``before``); a create
assumed that no object with its identity was at the provider (or, for a create the provider
replays by its Idempotency-Key, an object of ours marked for the same resource: the
interrupted create that the step completes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.core.catalog import Catalog, ResourceKind
from reconciler.core.changes import Plan
from reconciler.core.remote import (
    RemoteAction,
    RemoteChange,
    RemoteObject,
    differing,
    identity_key,
    list_scope,
)

Key = tuple[str, str]  # (organization, provider)

_ACTS_ON = (RemoteAction.UPDATE, RemoteAction.REPLACE, RemoteAction.ADOPT, RemoteAction.DELETE)


def provider_steps(plan: Plan) -> dict[Key, set[str]]:
    """The connections whose changes have provider steps, and the kinds those steps touch."""
    out: dict[Key, set[str]] = {}
    for c in plan.changes:
        for rc in c.remote:
            out.setdefault((c.organization, c.provider), set()).add(rc.kind)
    return out


def step_scopes(plan: Plan) -> dict[Key, dict[str, tuple[str, ...]]]:
    """For kinds listed per value of a field (Postmark's message streams): the values the
    provider steps name, by connection and kind."""
    specs: dict[tuple[Key, str], list[Mapping[str, Any] | None]] = {}
    for c in plan.changes:
        for rc in c.remote:
            specs.setdefault(((c.organization, c.provider), rc.kind), []).extend(
                [rc.before, rc.after]
            )
    out: dict[Key, dict[str, tuple[str, ...]]] = {}
    for (key, kind), given in specs.items():
        scope = list_scope(key[1], kind, given)
        if scope:
            out.setdefault(key, {})[kind] = scope
    return out


def moved_at_provider(
    catalog: Catalog, plan: Plan, held: Mapping[Key, Mapping[str, Iterable[RemoteObject]]]
) -> list[str]:
    """What no longer is as the plan's steps assumed, one phrase each ("ADDRESS: deleted at
    Stripe (we_1)"), in plan order. ``held``: what each connection's provider holds now, by
    kind; a connection missing from it is not checked."""
    out: list[str] = []
    for c in plan.changes:
        objects = held.get((c.organization, c.provider))
        if objects is None:
            continue
        provider = catalog.providers[c.provider]
        for rc in c.remote:
            kind = provider.resource_kind(rc.kind)
            if kind is None or kind.remote is None:
                continue
            now = list(objects.get(rc.kind, ()))
            what = _moved(rc, now, kind, provider.display_name)
            if what:
                out.append(f"{rc.address}: {what}")
    return out


def _moved(rc: RemoteChange, now: list[RemoteObject], kind: ResourceKind, at: str) -> str | None:
    assert kind.remote is not None
    if rc.action in _ACTS_ON and rc.remote_id is not None:
        obj = next((o for o in now if o.remote_id == rc.remote_id), None)
        if obj is None:
            return f"deleted at {at} ({rc.remote_id})"
        if rc.action is not RemoteAction.DELETE and rc.before is not None:
            changed = differing(kind, rc.before, obj.fields)
            if changed:
                return f"changed at {at} ({rc.remote_id}: {', '.join(changed)})"
        return None
    if rc.action is RemoteAction.CREATE:
        key = identity_key(kind, rc.identity)
        same = [o for o in now if identity_key(kind, o.identity) == key]
        replayed = kind.remote.idempotency_key and any(o.marker == rc.address for o in same)
        if same and not replayed:
            ids = ", ".join(o.remote_id for o in same)
            return f"an object with this identity appeared at {at} ({ids})"
    return None
