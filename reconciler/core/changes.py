"""The Plan and its changes: what apply will do, as immutable typed values.

One verb vocabulary, ``Action``, names what a plan does to an object (``create``, ``update``,
``delete``, ``adopt``, ``orphan``), what apply reports it did (``Action.past``: ``created``...)
and what the audit log records (``audit_action``: ``connection.create``...).

A ``Change`` is an address, an action, a kind and a typed payload for each side: ``before``
(what the plan saw; ``None`` for a create) and ``after`` (what apply makes; ``None`` for a
delete or an orphan). Apply reads ``action``, ``kind``, ``changed`` and ``after`` (and the rows
it reads under the lock); ``reason`` explains, it never decides. A new kind of change (a
provider-side resource with remote effects) is a new ``Kind``, a new payload class, and one
more branch where apply dispatches on ``kind`` (``apply/writes.py``: ``OrgWriter.upsert`` for
creates and updates, ``OrgWriter.teardown`` for deletions; the codec in ``core/planfile.py``
and the view in ``planfile.view`` for the file and the renderers).

A resource that exists at its provider (SPEC section 8) carries, in ``Change.remote``, what
apply does there (``reconciler.core.remote.RemoteChange``: create, update in place, replace,
delete, adopt, with the Idempotency-Key's generation); ``reconciler.core.plan_remote`` puts
them on the plan, ``apply/remote.py`` carries them out.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.remote import RemoteChange


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADOPT = "adopt"
    ORPHAN = "orphan"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def past(self) -> str:
        """How apply reports the action once done: ``created``, ``updated``, ``orphaned``..."""
        return self.value.removesuffix("e") + "ed"


_SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.ADOPT: "<",
    Action.ORPHAN: ">",
}


def audit_action(kind: Kind, action: Action, *, failed: bool = False) -> str:
    """The audit log's name for an action on a kind: ``connection.create``,
    ``connection.update_failed``, ``resource.delete``."""
    return f"{kind.value}.{action.value}{'_failed' if failed else ''}"


class Kind(enum.StrEnum):
    CONNECTION = "connection"  # ORG/PROVIDER: the instance, the owner's connection, credentials
    RESOURCE = "resource"  # ORG/PROVIDER/KIND[/IDENTITY]: a row of the resources table


_KIND_RANK = {k: i for i, k in enumerate(Kind)}  # a connection sorts before its resources


class Attr(enum.StrEnum):
    """What differs between before and after (``Change.changed``). A changed credential is
    ``CREDENTIALS`` with the field names in ``Change.credentials``."""

    INSTANCE = "instance"
    CONNECTION = "connection"
    MANAGED_BY = "managed_by"
    OWNER = "owner"
    CREDENTIALS = "credentials"
    ACTIVE = "active"
    SETTINGS = "settings"
    SPEC = "spec"
    DEFAULT = "default"


@dataclass(frozen=True)
class CredentialRef:
    """A credential field as the manifest names it: the environment variable that holds the
    secret and the keyed fingerprints of the value the plan saw (key id -> HMAC), never the
    value. A stored credential (a ``before``) has only its field."""

    field: str
    variable: str = ""
    fingerprints: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection as it is (``before``) or will be (``after``). ``status`` is the
    instance's: ``active``, ``inactive`` or ``error``."""

    owner: str
    active: bool
    status: str
    deletion_policy: str = "delete"
    prevent_destroy: bool = False
    credentials: tuple[CredentialRef, ...] = ()
    # ``credentials: keep`` (SPEC section 9): the stored credentials stay; ``credentials``
    # then names the stored fields, with no variable, and apply neither reads nor stores one
    keep_credentials: bool = False

    def credential(self, name: str) -> CredentialRef | None:
        return next((c for c in self.credentials if c.field == name), None)


@dataclass(frozen=True)
class Unmanaged:
    """The ``before`` of an adoption: an instance made outside any manifest."""

    managed_by: str
    status: str
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceSpec:
    """A resource as the database stores it: its fields as JSON data (``default`` included
    for kinds that have one) and whether it is the default of its list."""

    kind: str
    identity: str
    spec: Mapping[str, Any]
    is_default: bool = False


Payload = ConnectionSpec | Unmanaged | ResourceSpec


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed. Immutable; apply acts on ``action``,
    ``kind``, ``changed``, ``credentials`` and ``after``."""

    address: str
    action: Action
    kind: Kind
    organization: str
    provider: str
    reason: str
    reason_code: str
    before: Payload | None = None
    after: Payload | None = None
    changed: frozenset[Attr] = frozenset()
    credentials: tuple[str, ...] = ()  # the credential fields whose value changes
    # what apply does at the provider for a resource (SPEC section 8), in the order sent
    remote: tuple[RemoteChange, ...] = ()

    @property
    def sort_key(self) -> tuple[str, str, int, str]:
        return (self.organization, self.provider, _KIND_RANK[self.kind], self.address)

    @property
    def parent(self) -> str:
        """The connection's address (ORG/PROVIDER), for a connection and its resources."""
        return f"{self.organization}/{self.provider}"

    @property
    def resource(self) -> ResourceSpec | None:
        side = self.after if self.after is not None else self.before
        return side if isinstance(side, ResourceSpec) else None

    @property
    def connection(self) -> ConnectionSpec | None:
        """The connection as the manifest wants it (creates, updates, adoptions)."""
        return self.after if isinstance(self.after, ConnectionSpec) else None

    def changed_names(self) -> tuple[str, ...]:
        """``changed`` as the plan shows it: ``instance``, ``credentials.api_key``... in the
        order of ``Attr``, a changed credential by its field."""
        if not self.changed and not self.credentials:  # creates and deletes
            return ()
        out: list[str] = []
        for a in Attr:
            if a is Attr.CREDENTIALS:
                out.extend(f"credentials.{f}" for f in self.credentials)
            elif a in self.changed:
                out.append(a.value)
        return tuple(out)


@dataclass(frozen=True)
class Note:
    """Context for reviewers that is not a change: unmanaged objects, drift, skipped teardown."""

    address: str
    kind: str  # unmanaged | unhealthy | empty_manifest
    message: str
    since: str | None = None


@dataclass(frozen=True)
class PlanError:
    """A connection left out of the plan (SPEC section 8): an object at the provider that is
    not ours, a Quo number missing from the workspace. ``address`` names the object; nothing
    is written for ``connection`` (ORG/PROVIDER), and plan and apply exit 1."""

    connection: str
    address: str
    message: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{self.address}: {self.message}"
        return f"{where}: {text}" if where else text


@dataclass(frozen=True)
class Plan:
    """Everything apply will do, and what it was computed from (state lineage and serial)."""

    changes: tuple[Change, ...]
    notes: tuple[Note, ...] = ()
    organizations: tuple[str, ...] = ()
    lineage: str = ""
    serial: int = 0
    # connections left out because of an error at their provider (SPEC section 8)
    errors: tuple[PlanError, ...] = ()

    @property
    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for c in self.changes:
            counts[c.action.value] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def of(self, organization: str) -> list[Change]:
        return [c for c in self.changes if c.organization == organization]

    def deletions(self) -> list[Change]:
        return [c for c in self.changes if c.kind is Kind.CONNECTION and c.action is Action.DELETE]

    def variables(self) -> list[str]:
        """The environment variables whose secrets apply needs, sorted."""
        return sorted(
            {
                ref.variable
                for c in self.changes
                if c.connection is not None
                for ref in c.connection.credentials
                if ref.variable
            }
        )


def resource_address(connection: str, kind: str, identity: str) -> str:
    """ORG/PROVIDER/KIND/IDENTITY; a kind with a single value (model) is ORG/PROVIDER/KIND."""
    return f"{connection}/{kind}" if identity == kind else f"{connection}/{kind}/{identity}"


__all__ = [
    "Action",
    "Attr",
    "Change",
    "ConnectionSpec",
    "CredentialRef",
    "Kind",
    "Note",
    "Payload",
    "Plan",
    "PlanError",
    "ResourceSpec",
    "Unmanaged",
    "audit_action",
    "resource_address",
]
