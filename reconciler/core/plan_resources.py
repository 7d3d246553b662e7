"""Planning a connection's resources (sender emails, phone numbers, webhooks, the model...).

Set arithmetic on (kind, identity): desired minus stored is create, stored minus desired is
delete, the intersection is compared field by field and by which item is the default. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.changes import Action, Attr, Change, Kind, ResourceSpec, resource_address
from reconciler.core.desired import DesiredConnection, DesiredResource
from reconciler.core.state import ObservedInstance, ObservedResource


def resource_change(
    conn_address: str,
    organization: str,
    provider: str,
    action: Action,
    reason: str,
    code: str,
    before: ResourceSpec | None,
    after: ResourceSpec | None,
    changed: frozenset[Attr] = frozenset({Attr.SPEC}),
) -> Change:
    side = after if after is not None else before
    assert side is not None
    return Change(
        resource_address(conn_address, side.kind, side.identity),
        action,
        Kind.RESOURCE,
        organization,
        provider,
        reason,
        code,
        before,
        after,
        changed,
    )


def plan_resources(
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
    org, provider = conn.organization, conn.provider
    for key in sorted(set(want) | set(have)):
        kind, ident = key
        w, h = want.get(key), have.get(key)
        if w is not None and h is not None:
            update = _update(conn.address, org, provider, kind, ident, w, h)
            if update is not None:
                out.append(update)
            continue
        after = resource_spec(kind, ident, w.spec, w.is_default) if w is not None else None
        before = resource_spec(kind, ident, h.spec, h.is_default) if h is not None else None
        u = unmanaged.get(key)
        if after is not None and before is None and u is not None:
            found = resource_spec(kind, ident, u.spec, u.is_default)
            out.append(
                resource_change(
                    conn.address,
                    org,
                    provider,
                    Action.ADOPT,
                    "exists unmanaged; the manifest takes it over",
                    "adopt",
                    found,
                    after,
                    frozenset({Attr.MANAGED_BY} | ({Attr.SPEC} if found != after else set())),
                )
            )
        elif after is not None and before is None:
            out.append(
                resource_change(
                    conn.address,
                    org,
                    provider,
                    Action.CREATE,
                    "not in the database",
                    "new",
                    None,
                    after,
                )
            )
        elif after is None and before is not None:
            out.append(
                resource_change(
                    conn.address,
                    org,
                    provider,
                    Action.DELETE,
                    "no longer in the manifest",
                    "removed",
                    before,
                    None,
                )
            )
    return out


def _update(
    conn_address: str,
    organization: str,
    provider: str,
    kind: str,
    ident: str,
    w: DesiredResource,
    h: ObservedResource,
) -> Change | None:
    """The update of a resource both declared and stored, None when they agree (the specs
    are built only then: a plan without changes builds none)."""
    changed: list[Attr] = []
    if _bare(w.spec) != _bare(h.spec):
        changed.append(Attr.SPEC)
    if w.is_default != h.is_default:
        changed.append(Attr.DEFAULT)
    if not changed:
        return None
    reason = (
        f"becomes the default {kind}"
        if w.is_default and Attr.DEFAULT in changed
        else f"is no longer the default {kind}"
        if changed == [Attr.DEFAULT]
        else "fields changed"
    )
    return resource_change(
        conn_address,
        organization,
        provider,
        Action.UPDATE,
        reason,
        "default_changed" if changed == [Attr.DEFAULT] else "spec_changed",
        resource_spec(kind, ident, h.spec, h.is_default),
        resource_spec(kind, ident, w.spec, w.is_default),
        frozenset(changed),
    )


def _bare(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "default"}


def resource_spec(
    kind: str, identity: str, spec: Mapping[str, Any], is_default: bool
) -> ResourceSpec:
    """A resource as it is stored: its fields, and ``default`` where the kind has one."""
    stored = (
        {**_bare(spec), "default": is_default} if "default" in spec or is_default else _bare(spec)
    )
    return ResourceSpec(kind, identity, stored, is_default)
