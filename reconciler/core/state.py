"""Observed state: what the database holds, as plain frozen records (no ORM objects)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class ObservedCredential:
    id: int
    field: str
    key_id: str
    fingerprint: str
    fingerprint_key_id: str


@dataclass(frozen=True)
class ObservedHealth:
    status: str
    failure_type: str | None
    message: str
    response_ms: int
    checked_at: datetime
    failing_since: datetime | None = None


@dataclass(frozen=True)
class ObservedConnection:
    id: int
    user_email: str
    status: str
    managed_by: str
    deletion_policy: str = "delete"
    prevent_destroy: bool = False
    credentials: Mapping[str, ObservedCredential] = field(default_factory=dict)
    identity: Mapping[str, Any] = field(default_factory=dict)
    last_health: ObservedHealth | None = None


@dataclass(frozen=True)
class ObservedResource:
    id: int
    kind: str
    identity: str
    spec: Mapping[str, Any]
    is_default: bool
    managed_by: str = "manifest"
    # the object at the provider (SPEC section 8): see ``reconciler.core.remote.StoredRemote``
    remote_id: str | None = None
    remote_generation: int = 0
    remote_replaces: str | None = None
    remote_adopted: bool = False


@dataclass(frozen=True)
class PendingCreate:
    """A provider-side create committed as about to be sent, whose answer was never recorded
    (``reconciler_pending_creates``)."""

    organization: str
    provider: str
    kind: str
    identity: str
    generation: int = 0
    replaces: str | None = None


@dataclass(frozen=True)
class ObservedInstance:
    id: int
    organization: str
    provider: str
    status: str
    managed_by: str
    connections: tuple[ObservedConnection, ...] = ()
    resources: tuple[ObservedResource, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.organization}/{self.provider}"

    @cached_property  # asked for several times per connection by a plan
    def managed_connection(self) -> ObservedConnection | None:
        for c in self.connections:
            if c.managed_by == "manifest":
                return c
        return None

    @property
    def unmanaged_connections(self) -> tuple[ObservedConnection, ...]:
        return tuple(c for c in self.connections if c.managed_by != "manifest")


@dataclass(frozen=True)
class Observed:
    """Everything the planner needs from the database, keyed by (organization, provider)."""

    instances: Mapping[tuple[str, str], ObservedInstance] = field(default_factory=dict)
    lineage: str = ""
    serial: int = 0
    exists: bool = True  # False when the database has no schema yet (plan shows all as create)
    pending: tuple[PendingCreate, ...] = ()  # provider-side creates never recorded (SPEC 8)

    @cached_property
    def _by_organization(self) -> dict[str, list[ObservedInstance]]:
        index: dict[str, list[ObservedInstance]] = {}
        for (org, _), inst in sorted(self.instances.items()):
            index.setdefault(org, []).append(inst)
        return index

    def of(self, organization: str) -> list[ObservedInstance]:
        """An organization's instances, sorted by provider (indexed once: plans stay linear)."""
        return list(self._by_organization.get(organization, ()))

    def connected_pairs(self) -> set[tuple[str, str]]:
        """(organization, provider) pairs that have a working connection (satisfy dependencies)."""
        return {
            k
            for k, i in self.instances.items()
            if any(c.status == "connected" for c in i.connections)
        }


def plan_signature(instances: Iterable[ObservedInstance]) -> list[tuple[object, ...]]:
    """What a plan depends on in an organization's state (health history excluded): apply
    compares it, under the organization's lock, with what the plan saw."""
    return [
        (
            i.provider,
            i.managed_by,
            i.status == "inactive",
            tuple(
                (
                    c.user_email,
                    c.managed_by,
                    c.deletion_policy,
                    c.prevent_destroy,
                    tuple(sorted((f, x.fingerprint, x.key_id) for f, x in c.credentials.items())),
                )
                for c in sorted(i.connections, key=lambda c: c.user_email)
            ),
            tuple(
                (
                    r.kind,
                    r.identity,
                    tuple(sorted(r.spec.items(), key=str)),
                    r.is_default,
                    r.managed_by,
                    r.remote_id,
                    r.remote_generation,
                )
                for r in sorted(i.resources, key=lambda r: (r.kind, r.identity))
            ),
        )
        for i in sorted(instances, key=lambda i: i.provider)
    ]
