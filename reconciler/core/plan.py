"""Planning: (catalog, desired, observed, secret fingerprints) -> Plan. Pure: touches nothing.

Comparison is set arithmetic on keys, as in alembic's autogenerate: desired minus observed is
create, observed minus desired is delete (or orphan), the intersection is compared field by
field. The reason of a change explains it; apply decides on ``action`` and ``changed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.core.catalog import Catalog
from reconciler.core.changes import (
    Action,
    Attr,
    Change,
    ConnectionSpec,
    CredentialRef,
    Kind,
    Note,
    Plan,
    Unmanaged,
    resource_address,
)
from reconciler.core.desired import Desired, DesiredConnection, DesiredOrganization
from reconciler.core.errors import Diagnostics
from reconciler.core.kept_credentials import keep_problem, kept_fields
from reconciler.core.plan_resources import plan_resources
from reconciler.core.plan_teardown import plan_teardown, stored_connection
from reconciler.core.state import Observed, ObservedConnection, ObservedInstance

# (organization, provider, user, field) -> {key_id: fingerprint} of the value the manifest names
Fingerprints = Mapping[tuple[str, str, str, str], Mapping[str, str]]


def plan(
    catalog: Catalog,
    desired: Desired,
    observed: Observed,
    fingerprints: Fingerprints,
    *,
    organizations: tuple[str, ...] | None = None,
    providers: frozenset[str] | None = None,
    between: Callable[[], None] | None = None,
) -> tuple[Plan, Diagnostics]:
    """Compute the plan. Pure: the same inputs always give the same plan.

    ``organizations`` limits the plan to these managed organizations (targeting); others with a
    manifest are neither read for changes nor touched; ``providers`` likewise limits it to
    these providers' connections. Problems that make the plan unsafe to
    apply (preventDestroy, unmet dependencies, unmanaged objects in the way) come back as
    diagnostics. ``between`` is called after each organization and changes nothing here (the
    command's provider reads go on meanwhile).
    """
    diags = Diagnostics()
    changes: list[Change] = []
    notes: list[Note] = []
    orgs = sorted(desired.organizations) if organizations is None else sorted(organizations)
    for name in orgs:
        org = desired.organizations.get(name)
        if org is None:
            continue
        if between is not None:
            between()
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
            plan_teardown(
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


def _wanted(
    conn: DesiredConnection, fingerprints: Fingerprints, kept: tuple[str, ...] = ()
) -> ConnectionSpec:
    """The connection as the manifest wants it, with its credentials' variables and keyed
    fingerprints (never their values); with ``credentials: keep``, the stored fields."""
    if conn.keep_credentials:
        return ConnectionSpec(
            owner=conn.owner,
            active=conn.active,
            status="active" if conn.active else "inactive",
            deletion_policy=conn.deletion_policy,
            prevent_destroy=conn.prevent_destroy,
            credentials=tuple(CredentialRef(f) for f in kept),
            keep_credentials=True,
        )
    return ConnectionSpec(
        owner=conn.owner,
        active=conn.active,
        status="active" if conn.active else "inactive",
        deletion_policy=conn.deletion_policy,
        prevent_destroy=conn.prevent_destroy,
        credentials=tuple(
            CredentialRef(
                f,
                conn.credential_vars.get(f, ""),
                dict(fingerprints.get((conn.organization, conn.provider, conn.owner, f), {})),
            )
            for f in sorted(conn.credentials)
        ),
    )


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
            out.append(fname)
    return out


def _connection_change(
    conn: DesiredConnection,
    action: Action,
    reason: str,
    code: str,
    before: ConnectionSpec | Unmanaged | None,
    after: ConnectionSpec,
    changed: set[Attr],
    credentials: list[str],
) -> Change:
    if credentials:
        changed = changed | {Attr.CREDENTIALS}
    return Change(
        conn.address,
        action,
        Kind.CONNECTION,
        conn.organization,
        conn.provider,
        reason,
        code,
        before,
        after,
        frozenset(changed),
        tuple(credentials),
    )


def _plan_connection(
    catalog: Catalog,
    conn: DesiredConnection,
    inst: ObservedInstance | None,
    fingerprints: Fingerprints,
    diags: Diagnostics,
) -> list[Change]:
    # credentials: keep (SPEC section 9; the rules are in core/kept_credentials.py): refused
    # when there is nothing to keep; else the stored fields stay, and no variable is named
    problem = keep_problem(conn, inst)
    if problem is not None:
        diags.add(conn.file, conn.line, problem)
        return []
    existing = inst.managed_connection if inst else None
    if inst is None or (
        existing is None and not inst.connections and inst.managed_by == "manifest"
    ):
        change = _connection_change(
            conn,
            Action.CREATE,
            "not in the database",
            "new",
            None,
            _wanted(conn, fingerprints, kept_fields(conn, inst)),
            {Attr.INSTANCE, Attr.CONNECTION},
            sorted(conn.credentials),
        )
        return [change, *plan_resources(conn, inst, force_create=True)]
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
        before = Unmanaged(
            inst.managed_by, inst.status, tuple(c.user_email for c in inst.connections)
        )
        change = _connection_change(
            conn,
            Action.ADOPT,
            "exists unmanaged; the manifest says adopt: true"
            + ("; its stored credentials are kept" if conn.keep_credentials else ""),
            "adopt",
            before,
            _wanted(conn, fingerprints, kept_fields(conn, inst)),
            {Attr.MANAGED_BY},
            sorted(conn.credentials),
        )
        return [change, *plan_resources(conn, inst, force_create=False)]

    changed: set[Attr] = set()
    reasons: list[str] = []
    codes: list[str] = []
    owner_changed = existing.user_email != conn.owner
    if owner_changed:
        changed.add(Attr.OWNER)
        reasons.append(f"owner changes from {existing.user_email} to {conn.owner}")
        codes.append("owner_changed")
        # credentials are encrypted for their owner: a new owner re-stores every one
        creds = sorted(conn.credentials)
    else:
        creds = _credential_changes(conn, existing, fingerprints)
        if creds and not existing.credentials:
            # a failed first connection kept no credentials: the next apply retries it
            last = existing.last_health.message if existing.last_health else "no working credential"
            reasons.append(f"retry: the last attempt failed ({last})")
            codes.append("retry_failed")
        elif creds:
            reasons.append(", ".join(creds) + " changed")
            codes.append("credentials_changed")
    was_active = inst.status != "inactive"
    if conn.active != was_active:
        changed.add(Attr.ACTIVE)
        reasons.append("reactivated" if conn.active else "deactivated")
        codes.append("reactivated" if conn.active else "deactivated")
    if (existing.deletion_policy, existing.prevent_destroy) != (
        conn.deletion_policy,
        conn.prevent_destroy,
    ):
        changed.add(Attr.SETTINGS)
        reasons.append("deletion settings changed")
        codes.append("settings_changed")
    out: list[Change] = []
    if changed or creds:  # the connection as wanted is built only then: most are unchanged
        out.append(
            _connection_change(
                conn,
                Action.UPDATE,
                "; ".join(reasons),
                codes[0],
                stored_connection(inst, existing),
                _wanted(conn, fingerprints, kept_fields(conn, inst)),
                changed,
                creds,
            )
        )
    out.extend(plan_resources(conn, inst, force_create=False))
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
    "Action",
    "Change",
    "Fingerprints",
    "Note",
    "Plan",
    "plan",
    "resource_address",
]
