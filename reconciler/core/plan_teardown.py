"""Planning what leaves the manifest: delete, or orphan (``deletionPolicy: orphan``), unless
``preventDestroy`` or a dependent that stays forbids it. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.catalog import Catalog
from reconciler.core.changes import Action, Attr, Change, ConnectionSpec, CredentialRef, Kind
from reconciler.core.desired import DesiredConnection, DesiredOrganization
from reconciler.core.errors import Diagnostics
from reconciler.core.kept_credentials import SECRET_FIELD_MARK
from reconciler.core.plan_resources import resource_change, resource_spec
from reconciler.core.state import ObservedConnection, ObservedInstance


def credential_fields(existing: ObservedConnection) -> list[str]:
    """The connection's stored credentials; a resource's signing secret (SPEC section 8) is
    stored beside them but is not one."""
    return sorted(f for f in existing.credentials if SECRET_FIELD_MARK not in f)


def stored_connection(inst: ObservedInstance, existing: ObservedConnection) -> ConnectionSpec:
    return ConnectionSpec(
        owner=existing.user_email,
        active=inst.status != "inactive",
        status=inst.status,
        deletion_policy=existing.deletion_policy,
        prevent_destroy=existing.prevent_destroy,
        credentials=tuple(CredentialRef(f) for f in credential_fields(existing)),
    )


def plan_teardown(
    catalog: Catalog,
    org: DesiredOrganization,
    inst: ObservedInstance,
    wanted: Mapping[str, DesiredConnection],
    present: Mapping[str, ObservedInstance],
    diags: Diagnostics,
) -> list[Change]:
    conn = inst.managed_connection
    assert conn is not None
    before = stored_connection(inst, conn)
    if conn.deletion_policy == "orphan":
        return [
            Change(
                inst.address,
                Action.ORPHAN,
                Kind.CONNECTION,
                inst.organization,
                inst.provider,
                "no longer in the manifest; deletionPolicy orphan keeps its data",
                "orphaned",
                before,
                None,
                frozenset({Attr.MANAGED_BY}),
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
            Kind.CONNECTION,
            inst.organization,
            inst.provider,
            "no longer in the manifest",
            "removed",
            before,
            None,
            frozenset({Attr.INSTANCE, Attr.CONNECTION, Attr.CREDENTIALS}),
            tuple(credential_fields(conn)),
        )
    ]
    for r in inst.resources:
        if r.managed_by == "manifest":
            out.append(
                resource_change(
                    inst.address,
                    inst.organization,
                    inst.provider,
                    Action.DELETE,
                    "its connection is torn down",
                    "parent_removed",
                    resource_spec(r.kind, r.identity, r.spec, r.is_default),
                    None,
                )
            )
    return out
