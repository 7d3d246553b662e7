"""Provider-side resources (SPEC section 8): what a provider holds, and what makes it match.

Pure: the records come in (declared resources, what our tables remember, what the provider
answered), typed changes come out; nothing here talks to a provider or a database.

Ownership. An object at the provider is *ours* when our tables remember its id, or when it
carries our marker (Stripe: ``metadata[reconciler_address]``) naming the resource it was made
for. Nothing else is ever changed or deleted. A declared resource whose identity is held only
by an object that is not ours is a conflict, unless the entry says ``adopt: true``.

Usage (``reconciler.core.remote_diff``)::

    diff = diff_remote(
        connection="acme/stripe", provider="stripe", kind=kind,
        desired=conn.resources, stored=stored, remote=objects,   # remote=None: --refresh=false
    )
    diff.changes     # RemoteChange: create / update / replace / delete / adopt, with reasons
    diff.conflicts   # RemoteConflict: errors naming the object; nothing is applied for them
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.core.catalog import Provider, ResourceKind
from reconciler.core.credential_refs import REFERENCE
from reconciler.core.desired import DesiredResource
from reconciler.core.kept_credentials import SECRET_FIELD_MARK

MARKER_KEY = "reconciler_address"  # Stripe metadata key that names the resource an object is for
MANAGED_BY_KEY = "managed_by"
MANAGED_BY = "reconciler"


class RemoteAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # in place: the object keeps its id (and its signing secret)
    REPLACE = "replace"  # delete ``remote_id``, then create: a change the API cannot make in place
    DELETE = "delete"  # ``remote_id`` None: already gone at the provider, only forget it
    ADOPT = "adopt"  # take over ``remote_id`` (no new secret); update ``changed`` in place


class ChangeSource(StrEnum):
    """Where a change comes from, for the plan's reader."""

    MANIFEST = "manifest"
    PROVIDER = "provider"
    BOTH = "manifest and provider"


@dataclass(frozen=True)
class RemoteObject:
    """One object as the provider lists it, in the manifest's words.

    ``fields`` holds the kind's compared fields (e.g. ``url``, ``events``, ``description``);
    ``marker`` the resource address our marker names (None: unmarked); ``details`` what is
    shown but not compared (status, ``confirmed``, metadata). Never a signing secret.
    """

    provider: str
    kind: str
    remote_id: str
    identity: str
    fields: Mapping[str, Any]
    marker: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredRemote:
    """What our tables remember of one provider-side resource.

    ``remote_id`` None: a create was started and its answer never recorded (a crash between
    the provider's answer and the commit); ``generation`` and ``replaces`` are then those of
    that create, so its retry sends the same Idempotency-Key. ``generation`` counts the creates
    made for the resource (0 for the first); ``fields`` are as last applied.
    """

    kind: str
    identity: str
    remote_id: str | None
    fields: Mapping[str, Any]
    generation: int = 0
    replaces: str | None = None
    has_secret: bool = False
    adopted: bool = False


@dataclass(frozen=True)
class RemoteChange:
    """One thing apply does at the provider. ``reason`` explains; it never decides.

    For a create: ``generation`` and ``replaces`` go into its Idempotency-Key
    (``idempotency_key``); ``issues_secret`` says the provider returns a new signing secret to
    store. For an adopt: ``secret_variable`` names the ``${VAR}`` holding its secret, if given.
    """

    action: RemoteAction
    provider: str
    kind: str
    identity: str
    address: str
    reason: str
    source: ChangeSource = ChangeSource.MANIFEST
    remote_id: str | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    changed: tuple[str, ...] = ()
    generation: int = 0
    replaces: str | None = None
    issues_secret: bool = False
    secret_variable: str | None = None


@dataclass(frozen=True)
class RemoteConflict:
    """An error for one declared resource: plan and apply fail for its connection."""

    address: str
    remote_id: str | None
    message: str


@dataclass(frozen=True)
class RemoteDiff:
    changes: tuple[RemoteChange, ...] = ()
    conflicts: tuple[RemoteConflict, ...] = ()


# kinds a provider lists per value of one field, with that field's default: Postmark lists
# webhooks per message stream (``GET /webhooks?MessageStream=outbound``)
LIST_SCOPES: dict[tuple[str, str], tuple[str, str]] = {
    ("postmark", "webhooks"): ("message_stream", "outbound"),
}


def list_scope(
    provider: str, kind: str, specs: Iterable[Mapping[str, Any] | None]
) -> tuple[str, ...]:
    """The values a kind's list is read for (the default one always), from the declared and
    stored specs; empty for a kind listed whole."""
    scoped = LIST_SCOPES.get((provider, kind))
    if scoped is None:
        return ()
    field, default = scoped
    return tuple(sorted({default} | {str(s.get(field) or default) for s in specs if s is not None}))


def resource_address(connection: str, kind: str, identity: str) -> str:
    """``acme/stripe/webhook_endpoints/https://...``: also the marker written at the provider."""
    return f"{connection}/{kind}/{identity}"


def comparable(value: Any) -> Any:
    """Values as the comparison sees them: lists are sets, empty text is no value."""
    if isinstance(value, list | tuple):
        return tuple(sorted(str(v) for v in value))
    return None if value == "" else value


def declared_fields(kind: ResourceKind, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The compared fields of a declared resource (what the provider should hold)."""
    names = kind.remote.compare if kind.remote else []
    return {name: spec.get(name) for name in names}


def differing(kind: ResourceKind, a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str, ...]:
    names = kind.remote.compare if kind.remote else []
    return tuple(n for n in names if comparable(a.get(n)) != comparable(b.get(n)))


def secret_variable(spec: Mapping[str, Any]) -> str | None:
    """The variable of an entry's ``signing_secret: ${VAR}``, if it has one."""
    match = REFERENCE.match(str(spec.get("signing_secret") or ""))
    return match.group(1) if match else None


def missing_at_provider(
    connection: str,
    kind: ResourceKind,
    desired: Iterable[DesiredResource],
    remote: Iterable[RemoteObject],
) -> tuple[RemoteConflict, ...]:
    """Existence-only kinds (Quo phone numbers): an error for each declared one not there."""
    held = {identity_key(kind, o.identity) for o in remote}
    return tuple(
        RemoteConflict(
            resource_address(connection, kind.name, d.identity),
            None,
            f"{d.identity} is not a number of this {connection.split('/')[-1]} workspace "
            "(the provider's phone-number list does not have it); add it there first or "
            "remove it from the manifest",
        )
        for d in desired
        if d.kind == kind.name and identity_key(kind, d.identity) not in held
    )


def identity_key(kind: ResourceKind, identity: str) -> str:
    email = any(f.name == kind.identity and f.type == "email" for f in kind.fields)
    return identity.casefold() if email else identity


def idempotency_key(
    *,
    organization: str,
    address: str,
    fields: Mapping[str, Any],
    replaces: str | None,
    generation: int,
) -> str:
    """The ``Idempotency-Key`` of a create at the provider. Pure and deterministic.

    Derived from the organization, the resource, its desired state and what the create
    replaces (the id of an object deleted at the provider, and the generation counter): a retry
    or a re-run after a crash between the provider's answer and our commit sends the same key,
    and the provider replays its first answer (secret included) instead of creating a second
    object; a re-create after a deletion at the provider is a new key, so the provider does not
    hand back the deleted object's saved answer. 64 characters, within Stripe's 255.
    """
    material = json.dumps(
        {
            "organization": organization,
            "address": address,
            "fields": {k: comparable(v) for k, v in sorted(fields.items())},
            "replaces": replaces,
            "generation": generation,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "reconciler-" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:53]


def create_idempotency_key(organization: str, change: RemoteChange) -> str:
    """``idempotency_key`` of a create (or the create half of a replace)."""
    return idempotency_key(
        organization=organization,
        address=change.address,
        fields=change.after or {},
        replaces=change.replaces,
        generation=change.generation,
    )


def realized_kinds(
    provider: Provider, credential_fields: Iterable[str]
) -> tuple[ResourceKind, ...]:
    """The provider's kinds that exist at the provider for a connection holding these
    credential fields (sender signatures need ``account_token``; without it they are kept in
    our tables only). Existence-only kinds (Quo numbers) are included: they are read too."""
    held = set(credential_fields)
    return tuple(
        k for k in provider.resources if k.remote is not None and k.remote.credential in held
    )


def signing_secret_field(kind: str, identity: str) -> str:
    """The ``integration_credentials.field`` (≤ 64 characters) that holds the signing secret of
    one resource: ``webhook_endpoints.signing_secret.<12 hex of the identity's SHA-256>``. The
    SaaS finds a resource's secret by computing the same name; no manifest credential can
    collide (credential names have no dots)."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{kind}{SECRET_FIELD_MARK}{digest}"


def is_signing_secret_field(name: str) -> bool:
    """True for a credential row that holds a resource's signing secret (apply's credential
    sync must keep those rows; they are not the connection's credentials)."""
    return SECRET_FIELD_MARK in name
