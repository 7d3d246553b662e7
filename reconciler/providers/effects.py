"""Carrying out one planned provider-side change (apply, under the organization's lock).

Only the provider call happens here; what apply records (the resource row, the remote id,
the generation, the encrypted signing secret, the audit entry) it writes itself, in the same
transaction, from the returned ``Effect``.

Usage::

    effect = await carry_out(writes, change, organization="acme", kind=kind, current=obj)
    effect.object     # the object as the provider now holds it (None after a delete)
    effect.secret     # Secret of a new signing secret to store encrypted, or None
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.core.catalog import ResourceKind
from reconciler.core.remote import (
    RemoteAction,
    RemoteChange,
    RemoteObject,
    create_idempotency_key,
)
from reconciler.core.secret import Secret
from reconciler.providers.interface import RemoteWrites


@dataclass(frozen=True)
class Effect:
    change: RemoteChange
    object: RemoteObject | None
    secret: Secret | None = None
    called: bool = True  # False when nothing had to be sent (forgetting, adopting as is)


def stand_in(change: RemoteChange) -> RemoteObject | None:
    """The object a change acts on when the provider was not read (``--refresh=false``)."""
    if change.remote_id is None:
        return None
    return RemoteObject(
        change.provider, change.kind, change.remote_id, change.identity, change.before or {}
    )


async def carry_out(
    writes: RemoteWrites,
    change: RemoteChange,
    *,
    organization: str,
    kind: ResourceKind,
    current: RemoteObject | None = None,
) -> Effect:
    """Send what ``change`` needs. A create carries its deterministic Idempotency-Key where the
    kind takes one; a replace deletes first, then creates; a delete of something already gone
    is done. Raises ``ProviderError``."""
    target = current or stand_in(change)
    after = change.after or {}
    key = (
        create_idempotency_key(organization, change)
        if kind.remote is not None and kind.remote.idempotency_key
        else None
    )
    match change.action:
        case RemoteAction.CREATE:
            created = await writes.create(
                change.kind, after, address=change.address, idempotency_key=key
            )
            return Effect(change, created.object, created.secret)
        case RemoteAction.REPLACE:
            if target is not None:
                await writes.delete(target)
            created = await writes.create(
                change.kind, after, address=change.address, idempotency_key=key
            )
            return Effect(change, created.object, created.secret)
        case RemoteAction.UPDATE:
            if target is None:
                raise ValueError(f"an update of {change.address} needs the object's id")
            updated = await writes.update(target, after, address=change.address)
            return Effect(change, updated)
        case RemoteAction.DELETE:
            if target is None:
                return Effect(change, None, called=False)
            await writes.delete(target)
            return Effect(change, None)
        case RemoteAction.ADOPT:
            if target is None:
                raise ValueError(f"adopting {change.address} needs the object's id")
            if change.changed or writes.marks_ours:
                return Effect(change, await writes.update(target, after, address=change.address))
            return Effect(change, target, called=False)
    raise ValueError(f"unknown action {change.action}")
