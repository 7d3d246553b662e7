"""From rows to records: the one place where database rows become the planner's frozen
records (``reconciler.core.state``).

The ``*_record`` builders take anything with the columns as attributes: the ORM objects an
apply reads under an organization's lock (``OrgRows``, which it then writes). ``observe``
reads tens of thousands of rows as the driver's plain tuples instead, and builds their records
with the ``*_of`` builders, which take the columns in the order of ``observe``'s selects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from reconciler.core.state import (
    ObservedConnection,
    ObservedCredential,
    ObservedHealth,
    ObservedInstance,
    ObservedResource,
)
from reconciler.db.schema import Connection, Credential, Instance, Resource

R = TypeVar("R")
_new = object.__new__
_setattr = object.__setattr__


def _made(cls: type[R], values: dict[str, Any]) -> R:
    """A frozen record from the values of *all* its fields, without its ``__init__`` (whose
    ``object.__setattr__`` per field costs twice as much): equal to ``cls(**values)``."""
    record = _new(cls)
    _setattr(record, "__dict__", values)
    return record


def credential_of(row: Sequence[Any]) -> ObservedCredential:
    """(id, field, key_id, fingerprint, fingerprint_key_id)"""
    return _made(
        ObservedCredential,
        {
            "id": row[0],
            "field": row[1],
            "key_id": row[2],
            "fingerprint": row[3],
            "fingerprint_key_id": row[4],
        },
    )


def resource_of(row: Sequence[Any]) -> ObservedResource:
    """(id, kind, identity, spec, is_default, managed_by, remote_id, remote_generation,
    remote_replaces, remote_adopted), as the driver returns them (SQLite's booleans are 0/1)."""
    is_default = row[4]
    return _made(
        ObservedResource,
        {
            "id": row[0],
            "kind": row[1],
            "identity": row[2],
            "spec": json.loads(row[3]),
            "is_default": is_default if is_default is None else bool(is_default),
            "managed_by": row[5],
            "remote_id": row[6],
            "remote_generation": row[7] or 0,
            "remote_replaces": row[8],
            "remote_adopted": bool(row[9]),
        },
    )


def health_of(
    row: Sequence[Any], checked_at: datetime, failing_since: datetime | None
) -> ObservedHealth:
    """(status, failure_type, message, response_ms, ...), the time already converted."""
    return _made(
        ObservedHealth,
        {
            "status": row[0],
            "failure_type": row[1],
            "message": row[2],
            "response_ms": row[3],
            "checked_at": checked_at,
            "failing_since": failing_since,
        },
    )


def connection_of(
    row: Sequence[Any],
    credentials: Mapping[str, ObservedCredential],
    last_health: ObservedHealth | None,
) -> ObservedConnection:
    """(id, user_email, status, managed_by, deletion_policy, prevent_destroy, identity), as
    the driver returns them."""
    prevent = row[5]
    return _made(
        ObservedConnection,
        {
            "id": row[0],
            "user_email": row[1],
            "status": row[2],
            "managed_by": row[3],
            "deletion_policy": row[4],
            "prevent_destroy": prevent if prevent is None else bool(prevent),
            "credentials": credentials,
            "identity": _json_object(row[6]),
            "last_health": last_health,
        },
    )


def instance_of(
    row: Sequence[Any],
    connections: tuple[ObservedConnection, ...],
    resources: tuple[ObservedResource, ...],
) -> ObservedInstance:
    """(id, organization, provider, status, managed_by)"""
    return _made(
        ObservedInstance,
        {
            "id": row[0],
            "organization": row[1],
            "provider": row[2],
            "status": row[3],
            "managed_by": row[4],
            "connections": connections,
            "resources": resources,
        },
    )


def credential_record(row: Any) -> ObservedCredential:
    return ObservedCredential(
        row.id, row.field, row.key_id, row.fingerprint, row.fingerprint_key_id
    )


def resource_record(row: Any) -> ObservedResource:
    return ObservedResource(
        row.id,
        row.kind,
        row.identity,
        json.loads(row.spec),
        row.is_default,
        row.managed_by,
        row.remote_id,
        row.remote_generation or 0,
        row.remote_replaces,
        bool(row.remote_adopted),
    )


def connection_record(
    row: Any,
    credentials: Mapping[str, ObservedCredential],
    last_health: ObservedHealth | None = None,
) -> ObservedConnection:
    return ObservedConnection(
        id=row.id,
        user_email=row.user_email,
        status=row.status,
        managed_by=row.managed_by,
        deletion_policy=row.deletion_policy,
        prevent_destroy=row.prevent_destroy,
        credentials=credentials,
        identity=_json_object(row.identity),
        last_health=last_health,
    )


def instance_record(
    row: Any,
    connections: Iterable[ObservedConnection],
    resources: Iterable[ObservedResource],
) -> ObservedInstance:
    return ObservedInstance(
        id=row.id,
        organization=row.organization,
        provider=row.provider,
        status=row.status,
        managed_by=row.managed_by,
        connections=tuple(connections),
        resources=tuple(resources),
    )


def _json_object(text: str | None) -> dict[str, object]:
    """A stored JSON object; most connections store an empty one."""
    return {} if not text or text == "{}" else json.loads(text)


# An organization's rows, as apply reads them twice per organization: the statements are built
# once, so SQLAlchemy works out their cache keys once, not per organization.
_INSTANCES_OF = select(Instance).where(Instance.organization == bindparam("org"))
_CONNECTIONS_OF = select(Connection).where(
    Connection.instance_id.in_(bindparam("ids", expanding=True))
)
_CREDENTIALS_OF = select(Credential).where(
    Credential.connection_id.in_(bindparam("ids", expanding=True))
)
_RESOURCES_OF = select(Resource).where(Resource.instance_id.in_(bindparam("ids", expanding=True)))


@dataclass
class OrgRows:
    """An organization's rows, read once inside its locked transaction, for apply to write."""

    instances: dict[str, Instance] = field(default_factory=dict)  # by provider
    connections: dict[int, list[Connection]] = field(default_factory=dict)  # by instance id
    credentials: dict[int, list[Credential]] = field(default_factory=dict)  # by connection id
    resources: dict[tuple[int, str, str], Resource] = field(default_factory=dict)

    @classmethod
    def load(cls, s: Session, organization: str) -> OrgRows:
        rows = cls()
        for inst in s.scalars(_INSTANCES_OF, {"org": organization}):
            rows.instances[inst.provider] = inst
        ids = [i.id for i in rows.instances.values()]
        if not ids:
            return rows
        for c in s.scalars(_CONNECTIONS_OF, {"ids": ids}):
            rows.connections.setdefault(c.instance_id, []).append(c)
        conn_ids = [c.id for cs in rows.connections.values() for c in cs]
        if conn_ids:
            for cr in s.scalars(_CREDENTIALS_OF, {"ids": conn_ids}):
                rows.credentials.setdefault(cr.connection_id, []).append(cr)
        for r in s.scalars(_RESOURCES_OF, {"ids": ids}):
            rows.resources[(r.instance_id, r.kind, r.identity)] = r
        return rows

    def attach(self, s: Session) -> OrgRows:
        """These rows, read by another session (now closed) under a lock still held, in
        ``s``: unchanged since, so not read again."""
        s.add_all(self.instances.values())
        for group in (self.connections, self.credentials):
            for rows in group.values():
                s.add_all(rows)
        s.add_all(self.resources.values())
        return self

    def managed(self, inst: Instance) -> Connection | None:
        return next(
            (c for c in self.connections.get(inst.id, []) if c.managed_by == "manifest"), None
        )

    def observed(self) -> list[ObservedInstance]:
        """These rows as the planner's records (health history aside), for comparing with
        what the plan saw."""
        return [
            instance_record(
                i,
                (
                    connection_record(
                        c,
                        {x.field: credential_record(x) for x in self.credentials.get(c.id, [])},
                    )
                    for c in self.connections.get(i.id, [])
                ),
                (
                    resource_record(r)
                    for (iid, _, _), r in sorted(self.resources.items())
                    if iid == i.id
                ),
            )
            for _, i in sorted(self.instances.items())
        ]
