"""Planning: (catalog, desired, observed, secret fingerprints) -> Plan. Pure: touches nothing.

Comparison is set arithmetic on keys, as in alembic's autogenerate: desired minus observed is
create, observed minus desired is delete (or orphan), the intersection is compared field by
field. The reason of a change explains it; apply decides on ``action`` and ``changed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.catalog import Catalog
from reconciler.core.desired import Desired, DesiredConnection, DesiredOrganization
from reconciler.core.errors import Diagnostics
from reconciler.core.kept_credentials import keep_problem, kept_view
from reconciler.core.state import Observed, ObservedConnection, ObservedInstance

SENSITIVE = "(sensitive)"

# (organization, provider, user, field) -> {key_id: fingerprint} of the value the manifest names
Fingerprints = Mapping[tuple[str, str, str, str], Mapping[str, str]]


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADOPT = "adopt"
    ORPHAN = "orphan"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "adopt": "<", "orphan": ">"}[
            self.value
        ]


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed.

    ``kind`` is ``connection`` (address ORG/PROVIDER; covers the instance, the connection and
    its credentials) or ``resource`` (ORG/PROVIDER/KIND/IDENTITY). ``changed`` lists what
    differs (``credentials.api_key``, ``owner``, ``active``, ``status``, ``settings``,
    ``spec``, ``default``); apply acts on it.
    """

    address: str
    action: Action
    kind: str
    organization: str
    provider: str
    reason: str
    reason_code: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    changed: tuple[str, ...] = ()
    resource_kind: str | None = None
    identity: str | None = None

    @property
    def sort_key(self) -> tuple[str, str, int, str]:
        return (
            self.organization,
            self.provider,
            0 if self.kind == "connection" else 1,
            self.address,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "action": self.action.value,
            "kind": self.kind,
            "organization": self.organization,
            "provider": self.provider,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "before": _plain(self.before),
            "after": _plain(self.after),
            "changed": list(self.changed),
        }
        if self.kind == "resource":
            out["resource_kind"] = self.resource_kind
            out["identity"] = self.identity
        return out


@dataclass(frozen=True)
class Note:
    """Context for reviewers that is not a change: unmanaged objects, drift, skipped teardown."""

    address: str
    kind: str  # unmanaged | unhealthy | empty_manifest | inactive | override
    message: str
    since: str | None = None


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    notes: tuple[Note, ...] = ()
    organizations: tuple[str, ...] = ()
    lineage: str = ""
    serial: int = 0

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
        return [c for c in self.changes if c.kind == "connection" and c.action is Action.DELETE]


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def connection_view(
    *, owner: str, active: bool, status: str, credentials: list[str], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """What a plan shows of a connection; credential values are always ``(sensitive)``."""
    return {
        "owner": owner,
        "active": active,
        "status": status,
        "credentials": {f: SENSITIVE for f in sorted(credentials)},
        **settings,
    }


def plan(
    catalog: Catalog,
    desired: Desired,
    observed: Observed,
    fingerprints: Fingerprints,
    *,
    organizations: tuple[str, ...] | None = None,
    providers: frozenset[str] | None = None,
) -> tuple[Plan, Diagnostics]:
    """Compute the plan. Pure: the same inputs always give the same plan.

    ``organizations`` limits the plan to these managed organizations (targeting); others with a
    manifest are neither read for changes nor touched; ``providers`` likewise limits it to
    these providers' connections. Problems that make the plan unsafe to
    apply (preventDestroy, unmet dependencies, unmanaged objects in the way) come back as
    diagnostics.
    """
    diags = Diagnostics()
    changes: list[Change] = []
    notes: list[Note] = []
    orgs = sorted(desired.organizations) if organizations is None else sorted(organizations)
    for name in orgs:
        org = desired.organizations.get(name)
        if org is None:
            continue
        c, n = _plan_organization(catalog, org, observed, fingerprints, diags, providers)
        changes.extend(c)
        notes.extend(n)
    changes.sort(key=lambda c: c.sort_key)
    return (
        Plan(
            changes=tuple(changes),
            notes=tuple(sorted(notes, key=lambda n: (n.address, n.kind))),
            organizations=tuple(orgs),
            lineage=observed.lineage,
            serial=observed.serial,
        ),
        diags,
    )


def _plan_organization(
    catalog: Catalog,
    org: DesiredOrganization,
    observed: Observed,
    fingerprints: Fingerprints,
    diags: Diagnostics,
    providers: frozenset[str] | None = None,
) -> tuple[list[Change], list[Note]]:
    changes: list[Change] = []
    notes: list[Note] = []
    present = {
        i.provider: i for i in observed.of(org.name) if providers is None or i.provider in providers
    }
    wanted = {
        c.provider: c for c in org.connections if providers is None or c.provider in providers
    }
    # unmet dependencies are found by the manifest loader, which also sees the database
    for provider, conn in sorted(wanted.items()):
        inst = present.get(provider)
        changes.extend(_plan_connection(catalog, conn, inst, fingerprints, diags))
        if inst is not None:
            notes.extend(_drift_notes(inst, conn, changes))

    managed_gone = [
        i
        for p, i in sorted(present.items())
        if p not in wanted and i.managed_connection is not None
    ]
    if not org.connections and managed_gone and not org.allow_empty:
        notes.append(
            Note(
                org.name,
                "empty_manifest",
                f"the manifest of {org.name!r} lists no connections; nothing is torn "
                "down unless it says spec.allowEmpty: true",
            )
        )
        managed_gone = []
    for inst in managed_gone:
        # dependents are looked for among all of the organization's providers, not only
        # those --provider selects
        changes.extend(
            _plan_teardown(
                catalog,
                org,
                inst,
                {c.provider: c for c in org.connections},
                {i.provider: i for i in observed.of(org.name)},
                diags,
            )
        )

    for p, inst in sorted(present.items()):
        for uc in inst.unmanaged_connections:
            if p in wanted and wanted[p].adopt:
                continue
            notes.append(
                Note(
                    f"{inst.address}/{uc.user_email}",
                    "unmanaged",
                    f"{inst.address} has a connection of {uc.user_email} that no "
                    f"manifest manages ({uc.managed_by}); it is left alone",
                )
            )
    return changes, notes


def _settings(conn: DesiredConnection) -> dict[str, Any]:
    return {"deletion_policy": conn.deletion_policy, "prevent_destroy": conn.prevent_destroy}


def _credential_changes(
    conn: DesiredConnection, existing: ObservedConnection, fingerprints: Fingerprints
) -> list[str]:
    out = []
    # tokens obtained by apply (OAuth2 access tokens) are not the manifest's to compare
    declared = set(conn.credentials) | set(conn.credential_vars)
    for fname in sorted(declared | (set(existing.credentials) & declared)):
        have = existing.credentials.get(fname)
        want = fingerprints.get((conn.organization, conn.provider, conn.owner, fname), {})
        if (
            have is None
            or fname not in conn.credentials
            or want.get(have.fingerprint_key_id) != have.fingerprint
        ):
            out.append(f"credentials.{fname}")
    return out


def _plan_connection(
    catalog: Catalog,
    conn: DesiredConnection,
    inst: ObservedInstance | None,
    fingerprints: Fingerprints,
    diags: Diagnostics,
) -> list[Change]:
    status_after = "active" if conn.active else "inactive"
    after = connection_view(
        owner=conn.owner,
        active=conn.active,
        status=status_after,
        credentials=list(conn.credentials),
        settings=_settings(conn),
    )
    # credentials: keep (SPEC section 9; the rules are in core/kept_credentials.py): refused
    # when there is nothing to keep, else ``after`` shows the stored fields, marked as kept.
    # Nothing else here changes: a keep connection names no credential, so none is compared.
    problem = keep_problem(conn, inst)
    if problem is not None:
        diags.add(conn.file, conn.line, problem)
        return []
    after = kept_view(after, conn, inst)
    existing = inst.managed_connection if inst else None
    if inst is None or (
        existing is None and not inst.connections and inst.managed_by == "manifest"
    ):
        change = Change(
            conn.address,
            Action.CREATE,
            "connection",
            conn.organization,
            conn.provider,
            "not in the database",
            "new",
            None,
            after,
            changed=(
                "instance",
                "connection",
                *[f"credentials.{f}" for f in sorted(conn.credentials)],
            ),
        )
        return [change, *_plan_resources(conn, inst, force_create=True)]
    if existing is None:
        if not conn.adopt:
            diags.add(
                conn.file,
                conn.line,
                f"{conn.address} already exists and is not managed by a manifest "
                f"(connections: {', '.join(c.user_email for c in inst.connections) or 'none'}); "
                "add 'adopt: true' to this connection to take it over, or remove it from "
                "the manifest",
            )
            return []
        before = {
            "managed_by": inst.managed_by,
            "status": inst.status,
            "owners": [c.user_email for c in inst.connections],
        }
        change = Change(
            conn.address,
            Action.ADOPT,
            "connection",
            conn.organization,
            conn.provider,
            "exists unmanaged; the manifest says adopt: true"
            + ("; its stored credentials are kept" if conn.keep_credentials else ""),
            "adopt",
            before,
            after,
            changed=("managed_by", *[f"credentials.{f}" for f in sorted(conn.credentials)]),
        )
        return [change, *_plan_resources(conn, inst, force_create=False)]

    before = connection_view(
        owner=existing.user_email,
        active=inst.status != "inactive",
        status=inst.status,
        credentials=list(existing.credentials),
        settings={
            "deletion_policy": existing.deletion_policy,
            "prevent_destroy": existing.prevent_destroy,
        },
    )
    changed: list[str] = []
    reasons: list[str] = []
    codes: list[str] = []
    if existing.user_email != conn.owner:
        changed.append("owner")
        reasons.append(f"owner changes from {existing.user_email} to {conn.owner}")
        codes.append("owner_changed")
    cred_changes = (
        _credential_changes(conn, existing, fingerprints)
        if "owner" not in changed
        else [f"credentials.{f}" for f in sorted(conn.credentials)]
    )
    if cred_changes and "owner" not in changed and not existing.credentials:
        # a failed first connection kept no credentials: the next apply retries it
        changed.extend(cred_changes)
        last = existing.last_health.message if existing.last_health else "no working credential"
        reasons.append(f"retry: the last attempt failed ({last})")
        codes.append("retry_failed")
    elif cred_changes and "owner" not in changed:
        changed.extend(cred_changes)
        reasons.append(", ".join(c.split(".", 1)[1] for c in cred_changes) + " changed")
        codes.append("credentials_changed")
    elif "owner" in changed:
        changed.extend(cred_changes)
    was_active = inst.status != "inactive"
    if conn.active != was_active:
        changed.append("active")
        reasons.append("reactivated" if conn.active else "deactivated")
        codes.append("reactivated" if conn.active else "deactivated")
    if (existing.deletion_policy, existing.prevent_destroy) != (
        conn.deletion_policy,
        conn.prevent_destroy,
    ):
        changed.append("settings")
        reasons.append("deletion settings changed")
        codes.append("settings_changed")
    out: list[Change] = []
    if changed:
        out.append(
            Change(
                conn.address,
                Action.UPDATE,
                "connection",
                conn.organization,
                conn.provider,
                "; ".join(reasons),
                codes[0],
                before,
                after,
                changed=tuple(changed),
            )
        )
    out.extend(_plan_resources(conn, inst, force_create=False))
    return out


def _plan_resources(
    conn: DesiredConnection, inst: ObservedInstance | None, *, force_create: bool
) -> list[Change]:
    have = (
        {}
        if (inst is None or force_create)
        else {(r.kind, r.identity): r for r in inst.resources if r.managed_by == "manifest"}
    )
    want = {(r.kind, r.identity): r for r in conn.resources}
    # rows of the same identity that no manifest manages (made in the SaaS's screens, or
    # orphaned) are adopted, not created again: what `reconciler import` writes plans as adopt
    unmanaged = (
        {}
        if (inst is None or force_create)
        else {(r.kind, r.identity): r for r in inst.resources if r.managed_by != "manifest"}
    )
    out: list[Change] = []
    for key in sorted(set(want) | set(have)):
        kind, ident = key
        addr = resource_address(conn.address, kind, ident)
        w, h = want.get(key), have.get(key)
        u = unmanaged.get(key)
        if w is not None and h is None and u is not None:
            out.append(
                Change(
                    addr,
                    Action.ADOPT,
                    "resource",
                    conn.organization,
                    conn.provider,
                    "exists unmanaged; the manifest takes it over",
                    "adopt",
                    _resource_view(u.spec, u.is_default),
                    _resource_view(w.spec, w.is_default),
                    ("managed_by", *(("spec",) if _bare(w.spec) != _bare(u.spec) else ())),
                    kind,
                    ident,
                )
            )
        elif w is not None and h is None:
            out.append(
                Change(
                    addr,
                    Action.CREATE,
                    "resource",
                    conn.organization,
                    conn.provider,
                    "not in the database",
                    "new",
                    None,
                    _resource_view(w.spec, w.is_default),
                    ("spec",),
                    kind,
                    ident,
                )
            )
        elif w is None and h is not None:
            out.append(
                Change(
                    addr,
                    Action.DELETE,
                    "resource",
                    conn.organization,
                    conn.provider,
                    "no longer in the manifest",
                    "removed",
                    _resource_view(h.spec, h.is_default),
                    None,
                    ("spec",),
                    kind,
                    ident,
                )
            )
        elif w is not None and h is not None:
            changed = []
            if _bare(w.spec) != _bare(h.spec):
                changed.append("spec")
            if w.is_default != h.is_default:
                changed.append("default")
            if changed:
                reason = (
                    f"becomes the default {kind}"
                    if w.is_default and "default" in changed
                    else f"is no longer the default {kind}"
                    if "default" in changed and changed == ["default"]
                    else "fields changed"
                )
                out.append(
                    Change(
                        addr,
                        Action.UPDATE,
                        "resource",
                        conn.organization,
                        conn.provider,
                        reason,
                        "default_changed" if changed == ["default"] else "spec_changed",
                        _resource_view(h.spec, h.is_default),
                        _resource_view(w.spec, w.is_default),
                        tuple(changed),
                        kind,
                        ident,
                    )
                )
    return out


def resource_address(connection: str, kind: str, identity: str) -> str:
    """ORG/PROVIDER/KIND/IDENTITY; a kind with a single value (model) is ORG/PROVIDER/KIND."""
    return f"{connection}/{kind}" if identity == kind else f"{connection}/{kind}/{identity}"


def _bare(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "default"}


def _resource_view(spec: Mapping[str, Any], is_default: bool) -> dict[str, Any]:
    """A resource as a plan shows it: its fields, and ``default`` where the kind has one."""
    return (
        {**_bare(spec), "default": is_default} if "default" in spec or is_default else _bare(spec)
    )


def _plan_teardown(
    catalog: Catalog,
    org: DesiredOrganization,
    inst: ObservedInstance,
    wanted: Mapping[str, DesiredConnection],
    present: Mapping[str, ObservedInstance],
    diags: Diagnostics,
) -> list[Change]:
    conn = inst.managed_connection
    assert conn is not None
    before = connection_view(
        owner=conn.user_email,
        active=inst.status != "inactive",
        status=inst.status,
        credentials=list(conn.credentials),
        settings={"deletion_policy": conn.deletion_policy, "prevent_destroy": conn.prevent_destroy},
    )
    if conn.deletion_policy == "orphan":
        return [
            Change(
                inst.address,
                Action.ORPHAN,
                "connection",
                inst.organization,
                inst.provider,
                "no longer in the manifest; deletionPolicy orphan keeps its data",
                "orphaned",
                before,
                None,
                ("managed_by",),
            )
        ]
    if conn.prevent_destroy:
        diags.add(
            org.file,
            org.line,
            f"{inst.address} has preventDestroy: true and would be deleted; put it back in "
            "the manifest, or apply it once with preventDestroy: false before removing it",
        )
        return []
    for other, oinst in present.items():
        p = catalog.providers.get(other)
        staying = other in wanted or (oinst.managed_connection is None and oinst.connections)
        if p and inst.provider in p.depends_on and staying:
            diags.add(
                org.file,
                org.line,
                f"{inst.address} cannot be torn down while {org.name}/{other}, which "
                f"depends on it, remains; remove {other} too or keep {inst.provider}",
            )
    out = [
        Change(
            inst.address,
            Action.DELETE,
            "connection",
            inst.organization,
            inst.provider,
            "no longer in the manifest",
            "removed",
            before,
            None,
            ("instance", "connection", *[f"credentials.{f}" for f in sorted(conn.credentials)]),
        )
    ]
    for r in inst.resources:
        if r.managed_by == "manifest":
            out.append(
                Change(
                    resource_address(inst.address, r.kind, r.identity),
                    Action.DELETE,
                    "resource",
                    inst.organization,
                    inst.provider,
                    "its connection is torn down",
                    "parent_removed",
                    _resource_view(r.spec, r.is_default),
                    None,
                    ("spec",),
                    r.kind,
                    r.identity,
                )
            )
    return out


def _drift_notes(
    inst: ObservedInstance, conn: DesiredConnection, changes: list[Change]
) -> list[Note]:
    existing = inst.managed_connection
    if existing is None or existing.last_health is None or existing.last_health.status == "healthy":
        return []
    if any(c.address == inst.address for c in changes):
        return []
    h = existing.last_health
    since = (h.failing_since or h.checked_at).isoformat(timespec="seconds")
    return [
        Note(
            inst.address,
            "unhealthy",
            f"{inst.address} is unhealthy: {h.message} (failing since {since})",
            since,
        )
    ]


__all__ = [
    "SENSITIVE",
    "Action",
    "Change",
    "Fingerprints",
    "Note",
    "Plan",
    "connection_view",
    "plan",
]
