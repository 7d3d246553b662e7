"""Provider-side resources in the plan (SPEC section 8). Pure: records in, typed changes out.

``remote_targets`` says which connections have resources at their provider (declared in the
manifest, or remembered in the database) and which of their kinds can be read with the
credentials they hold; the caller reads those (refresh, GET only) and hands back what it read.
``with_remote`` then diffs each connection's kinds (``reconciler.core.remote_diff``) and puts
each provider-side change on the one Plan: on the resource change of the same address when
the manifest changed it too, or as a resource change of its own (an object deleted or changed
at the provider, with a reason saying so). Conflicts (an object of the same identity that is
not ours, a Quo number not in the workspace) are errors naming the object (``Plan.errors``):
their connection is left out of the plan, the rest of it stands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core.catalog import Catalog, Provider
from reconciler.core.changes import (
    Action,
    Attr,
    Change,
    Kind,
    Note,
    Plan,
    PlanError,
    ResourceSpec,
)
from reconciler.core.desired import Desired, DesiredConnection, DesiredResource
from reconciler.core.plan_resources import resource_spec
from reconciler.core.remote import (
    RemoteAction,
    RemoteChange,
    RemoteDiff,
    RemoteObject,
    StoredRemote,
    declared_fields,
    list_scope,
    missing_at_provider,
    realized_kinds,
    signing_secret_field,
)
from reconciler.core.remote_diff import diff_remote
from reconciler.core.state import Observed, ObservedInstance, ObservedResource, PendingCreate

Key = tuple[str, str]  # (organization, provider)


@dataclass(frozen=True)
class RemoteTarget:
    """A connection whose provider side is read: with the manifest's credentials when the
    database has no managed connection for it yet (``new``), else with the stored ones."""

    organization: str
    provider: str
    kinds: tuple[str, ...]
    new: bool
    # kind -> the values its list is read for (Postmark: message streams); absent: read whole
    scopes: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.organization, self.provider)


@dataclass(frozen=True)
class Refreshed:
    """What was read of one connection's provider side: ``objects`` by kind, or ``error`` (a
    secret-free message) when the provider could not be read."""

    objects: Mapping[str, tuple[RemoteObject, ...]]
    error: str | None = None


def _credential_fields(conn: DesiredConnection | None, inst: ObservedInstance | None) -> set[str]:
    held: set[str] = set()
    if conn is not None:
        held |= set(conn.credentials) | set(conn.credential_vars)
    managed = inst.managed_connection if inst is not None else None
    if managed is not None and (conn is None or conn.keep_credentials or not held):
        held |= set(managed.credentials)
    return held


def remote_targets(
    catalog: Catalog,
    desired: Desired,
    observed: Observed,
    organizations: Iterable[str],
    providers: frozenset[str] | None = None,
) -> list[RemoteTarget]:
    """The connections of these organizations that have provider-side resources, in the
    manifest or in the database, with the kinds their credentials can read."""
    out: list[RemoteTarget] = []
    # providers none of whose kinds exist at the provider have no targets (most of them)
    remote = {
        name: p
        for name, p in catalog.providers.items()
        if any(k.remote is not None for k in p.resources)
        and (providers is None or name in providers)
    }
    for org in sorted(set(organizations)):
        d = desired.organizations.get(org)
        wanted = {c.provider: c for c in d.connections} if d is not None else {}
        present = {i.provider: i for i in observed.of(org) if i.managed_connection is not None}
        for name in sorted(set(wanted) | set(present)):
            provider = remote.get(name)
            if provider is None:
                continue
            conn, inst = wanted.get(name), present.get(name)
            kinds = realized_kinds(provider, _credential_fields(conn, inst))
            declared = {r.kind for r in conn.resources} if conn is not None else set()
            stored = (
                {r.kind for r in inst.resources if r.managed_by == "manifest"} if inst else set()
            )
            used = tuple(k.name for k in kinds if k.name in declared | stored)
            if used:
                out.append(
                    RemoteTarget(org, name, used, inst is None, _scopes(name, used, conn, inst))
                )
    return out


def _scopes(
    provider: str,
    kinds: tuple[str, ...],
    conn: DesiredConnection | None,
    inst: ObservedInstance | None,
) -> dict[str, tuple[str, ...]]:
    specs = [(r.kind, r.spec) for r in (conn.resources if conn is not None else ())]
    specs += [(r.kind, r.spec) for r in _managed(inst)]
    scopes = {k: list_scope(provider, k, [s for kind, s in specs if kind == k]) for k in kinds}
    return {k: v for k, v in scopes.items() if v}


def _managed(inst: ObservedInstance | None) -> list[ObservedResource]:
    return [r for r in (inst.resources if inst else ()) if r.managed_by == "manifest"]


def stored_remotes(
    inst: ObservedInstance | None,
    kind: str,
    pending: Iterable[PendingCreate] = (),
) -> list[StoredRemote]:
    """What our tables remember of a connection's resources of one kind. A create committed as
    about to be sent and never recorded (``pending``) is remembered as started: its object at
    the provider is then taken as ours, not as a conflict."""
    started = {(p.kind, p.identity): p for p in pending if p.kind == kind}
    managed = inst.managed_connection if inst is not None else None
    secrets = set(managed.credentials) if managed is not None else set()
    out = []
    for r in _managed(inst):
        if r.kind != kind:
            continue
        p = started.pop((r.kind, r.identity), None)
        out.append(
            StoredRemote(
                r.kind,
                r.identity,
                r.remote_id if p is None else None,
                declared_fields_of(r),
                r.remote_generation if p is None else p.generation,
                r.remote_replaces if p is None else p.replaces,
                signing_secret_field(r.kind, r.identity) in secrets,
                r.remote_adopted,
            )
        )
    out += [
        StoredRemote(p.kind, p.identity, None, {}, p.generation, p.replaces)
        for p in started.values()
    ]
    return out


def declared_fields_of(r: ObservedResource) -> dict[str, object]:
    return {k: v for k, v in r.spec.items() if k not in ("default", "adopt", "signing_secret")}


def with_remote(
    catalog: Catalog,
    desired: Desired,
    observed: Observed,
    base: Plan,
    targets: Iterable[RemoteTarget],
    read: Mapping[Key, Refreshed] | None,
    *,
    keep_failed: bool = False,
) -> Plan:
    """``base`` with each target's provider-side changes. ``read`` None: ``--refresh=false``
    (compare with the database only); a target missing from it was not read either.

    A conflict is a ``PlanError`` on the plan, and its connection (the connection change and
    every resource change of it) is left out, unless ``keep_failed`` (``drift`` reports all)."""
    changes = list(base.changes)
    # a resource change's place in ``changes``, kept up to date by ``_merge`` (built once: per
    # target it would cost the whole plan's length, quadratic in a fleet)
    index = {c.address: i for i, c in enumerate(changes) if c.kind is Kind.RESOURCE}
    errors = list(base.errors)
    notes = list(base.notes)
    pending: dict[Key, list[PendingCreate]] = {}
    for p in observed.pending:
        pending.setdefault((p.organization, p.provider), []).append(p)
    for t in targets:
        provider = catalog.providers[t.provider]
        d = desired.organizations.get(t.organization)
        conn = next((c for c in d.connections if c.provider == t.provider), None) if d else None
        inst = next((i for i in observed.of(t.organization) if i.provider == t.provider), None)
        got = read.get(t.key) if read is not None else None
        address = f"{t.organization}/{t.provider}"
        if got is not None and got.error is not None:
            notes.append(
                Note(
                    address,
                    "provider_unread",
                    f"{address}: {provider.display_name} could not be read ({got.error}); its "
                    "resources there are compared with the database only",
                )
            )
            got = None
        file, line = (conn.file, conn.line) if conn is not None else ("", None)
        wanted = conn.resources if conn is not None else ()
        for kind_name in t.kinds:
            kind = provider.resource_kind(kind_name)
            assert kind is not None and kind.remote is not None
            objects = got.objects.get(kind_name, ()) if got is not None else None
            if kind.remote.existence_only:
                if objects is not None:
                    for c in missing_at_provider(address, kind, wanted, objects):
                        errors.append(PlanError(address, c.address, c.message, file, line))
                continue
            diff = diff_remote(
                connection=address,
                provider=t.provider,
                kind=kind,
                desired=wanted,
                stored=stored_remotes(inst, kind_name, pending.get(t.key, ())),
                remote=objects,
            )
            for c in diff.conflicts:
                errors.append(PlanError(address, c.address, c.message, file, line))
            _merge(changes, index, diff, provider, t.organization, conn, inst)
    failed = {e.connection for e in errors}
    if not keep_failed:
        changes = [c for c in changes if c.parent not in failed]
    changes.sort(key=lambda c: c.sort_key)
    return dataclasses.replace(
        base,
        changes=tuple(changes),
        notes=tuple(sorted(notes, key=lambda n: (n.address, n.kind))),
        errors=tuple(sorted(errors, key=lambda e: (e.connection, e.address, e.message))),
    )


def at_provider(reason: str, provider: Provider) -> str:
    """A diff's reason in the provider's name: "deleted at Stripe (was we_…)"."""
    return reason.replace("the provider", provider.display_name)


_STANDALONE = {
    RemoteAction.CREATE: Action.CREATE,
    RemoteAction.UPDATE: Action.UPDATE,
    RemoteAction.REPLACE: Action.UPDATE,
    RemoteAction.ADOPT: Action.ADOPT,
    RemoteAction.DELETE: Action.DELETE,
}


def _merge(
    changes: list[Change],
    index: dict[str, int],
    diff: RemoteDiff,
    provider: Provider,
    organization: str,
    conn: DesiredConnection | None,
    inst: ObservedInstance | None,
) -> None:
    rows = {
        (r.kind, r.identity): r
        for r in (inst.resources if inst else ())
        if r.managed_by == "manifest"
    }
    wants: dict[tuple[str, str], DesiredResource] = {
        (r.kind, r.identity): r for r in (conn.resources if conn is not None else ())
    }
    for rc in diff.changes:
        row = rows.get((rc.kind, rc.identity))
        reason = at_provider(_reason(rc, row), provider)
        i = index.get(rc.address)
        if i is not None:
            c = changes[i]
            action = (
                Action.ADOPT
                if (c.action, rc.action)
                == (
                    Action.CREATE,
                    RemoteAction.ADOPT,
                )
                else c.action
            )
            changes[i] = dataclasses.replace(
                c,
                action=action,
                reason=f"{c.reason}; {_named(reason, provider)}",
                remote=(*c.remote, rc),
            )
            continue
        want = wants.get((rc.kind, rc.identity))
        action = _STANDALONE[rc.action]
        if action is Action.DELETE and want is not None:
            action = Action.UPDATE  # a second object of ours goes; the resource stays
        after = (
            resource_spec(want.kind, want.identity, want.spec, want.is_default)
            if want is not None
            else None
        )
        before = ResourceSpec(rc.kind, rc.identity, dict(rc.before)) if rc.before else None
        if before is None and row is not None and action is not Action.CREATE:
            before = resource_spec(row.kind, row.identity, row.spec, row.is_default)
        if after is None and before is None:
            before = ResourceSpec(rc.kind, rc.identity, dict(rc.after or {}))
        changes.append(
            Change(
                rc.address,
                action,
                Kind.RESOURCE,
                organization,
                rc.provider,
                reason,
                f"provider_{rc.action.value}",
                before,
                after,
                frozenset({Attr.SPEC}),
                remote=(rc,),
            )
        )
        index[rc.address] = len(changes) - 1


def _named(reason: str, provider: Provider) -> str:
    """A provider-side reason that says where: "at Postmark: changed in the manifest…"."""
    shown = provider.display_name
    return reason if shown in reason else f"at {shown}: {reason}"


def _reason(rc: RemoteChange, row: ObservedResource | None) -> str:
    """What a provider-side change does, for the plan's reader."""
    if (
        rc.action is RemoteAction.CREATE
        and row is not None
        and row.remote_id is None
        and rc.reason.startswith("completing")
    ):
        secret = ", which issues its signing secret" if rc.issues_secret else ""
        return f"kept in the database only until now: created at the provider{secret}"
    if rc.action is RemoteAction.CREATE and rc.replaces is None and rc.source.value == "manifest":
        secret = ", which issues its signing secret" if rc.issues_secret else ""
        return (
            rc.reason
            if rc.reason.startswith(("made by", "completing"))
            else f"created at the provider{secret}"
        )
    return rc.reason


__all__ = [
    "Refreshed",
    "RemoteTarget",
    "at_provider",
    "declared_fields",
    "remote_targets",
    "stored_remotes",
    "with_remote",
]
