"""From rows to records: the one place where database rows become the planner's frozen
records (``reconciler.core.state``).

The builders take anything with the columns as attributes: the plain rows of a Core select
(``observe``, many organizations, no ORM cost) and the ORM objects an apply reads under an
organization's lock (``OrgRows``, which it then writes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reconciler.core.state import (
    ObservedConnection,
    ObservedCredential,
    ObservedHealth,
    ObservedInstance,
    ObservedResource,
)
from reconciler.db.schema import Connection, Credential, Instance, Resource


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
        for inst in s.scalars(select(Instance).where(Instance.organization == organization)):
            rows.instances[inst.provider] = inst
        ids = [i.id for i in rows.instances.values()]
        if not ids:
            return rows
        for c in s.scalars(select(Connection).where(Connection.instance_id.in_(ids))):
            rows.connections.setdefault(c.instance_id, []).append(c)
        conn_ids = [c.id for cs in rows.connections.values() for c in cs]
        if conn_ids:
            for cr in s.scalars(select(Credential).where(Credential.connection_id.in_(conn_ids))):
                rows.credentials.setdefault(cr.connection_id, []).append(cr)
        for r in s.scalars(select(Resource).where(Resource.instance_id.in_(ids))):
            rows.resources[(r.instance_id, r.kind, r.identity)] = r
        return rows

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
