"""Reading the observed state: every table once, whatever the number of organizations."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from reconciler.core.state import (
    Observed,
    ObservedConnection,
    ObservedCredential,
    ObservedHealth,
    ObservedInstance,
    ObservedResource,
)
from reconciler.db.schema import Connection, Credential, Health, Instance, Resource, StateMeta
from reconciler.db.schema_version import check_schema


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def observe(engine: Engine, organizations: Collection[str] | None = None) -> Observed:
    """The whole observed state (or that of some organizations) in a constant number of queries.

    Refuses (ConfigError) a schema older or newer than this tool's: every command reads here."""
    if not check_schema(engine):
        return Observed(exists=False)
    with Session(engine) as s:
        return observe_in(s, organizations)


def observe_in(s: Session, organizations: Collection[str] | None = None) -> Observed:
    meta = s.get(StateMeta, 1)
    iq = select(Instance)
    if organizations is not None:
        iq = iq.where(Instance.organization.in_(sorted(organizations)))
    instances = list(s.scalars(iq))
    ids = [i.id for i in instances]
    inst_filter = organizations is not None

    cq = select(Connection)
    rq = select(Resource)
    if inst_filter:
        cq = cq.where(Connection.instance_id.in_(ids))
        rq = rq.where(Resource.instance_id.in_(ids))
    connections = list(s.scalars(cq))
    conn_ids = [c.id for c in connections]
    crq = select(Credential)
    if inst_filter:
        crq = crq.where(Credential.connection_id.in_(conn_ids))
    creds: dict[int, dict[str, ObservedCredential]] = defaultdict(dict)
    for cr in s.scalars(crq):
        creds[cr.connection_id][cr.field] = ObservedCredential(
            cr.id, cr.field, cr.key_id, cr.fingerprint, cr.fingerprint_key_id
        )
    health = _last_health(s, conn_ids if inst_filter else None)
    resources: dict[int, list[ObservedResource]] = defaultdict(list)
    for r in s.scalars(rq.order_by(Resource.kind, Resource.identity)):
        resources[r.instance_id].append(
            ObservedResource(
                r.id, r.kind, r.identity, json.loads(r.spec), r.is_default, r.managed_by
            )
        )
    by_instance: dict[int, list[ObservedConnection]] = defaultdict(list)
    for c in sorted(connections, key=lambda c: (c.instance_id, c.user_email)):
        by_instance[c.instance_id].append(
            ObservedConnection(
                id=c.id,
                user_email=c.user_email,
                status=c.status,
                managed_by=c.managed_by,
                deletion_policy=c.deletion_policy,
                prevent_destroy=c.prevent_destroy,
                credentials=creds.get(c.id, {}),
                identity=json.loads(c.identity or "{}"),
                last_health=health.get(c.id),
            )
        )
    out = {
        (i.organization, i.provider): ObservedInstance(
            id=i.id,
            organization=i.organization,
            provider=i.provider,
            status=i.status,
            managed_by=i.managed_by,
            connections=tuple(by_instance.get(i.id, ())),
            resources=tuple(resources.get(i.id, ())),
        )
        for i in instances
    }
    return Observed(
        instances=out,
        lineage=meta.lineage if meta else "",
        serial=meta.serial if meta else 0,
        exists=True,
    )


def _last_health(s: Session, conn_ids: list[int] | None) -> dict[int, ObservedHealth]:
    """Last health row per connection, and since when it has been failing (two queries)."""
    last_id = select(Health.connection_id, func.max(Health.id).label("last")).group_by(
        Health.connection_id
    )
    last_ok = (
        select(Health.connection_id, func.max(Health.id).label("ok"))
        .where(Health.status == "healthy")
        .group_by(Health.connection_id)
    )
    if conn_ids is not None:
        last_id = last_id.where(Health.connection_id.in_(conn_ids))
        last_ok = last_ok.where(Health.connection_id.in_(conn_ids))
    lasts = last_id.subquery()
    rows = s.execute(select(Health).join(lasts, Health.id == lasts.c.last)).scalars().all()
    ok = {cid: hid for cid, hid in s.execute(last_ok).all() if cid is not None}
    failing_since = _first_failures_after(s, ok, [r for r in rows if r.status != "healthy"])
    return {
        r.connection_id: ObservedHealth(
            status=r.status,
            failure_type=r.failure_type,
            message=r.message,
            response_ms=r.response_ms,
            checked_at=_aware(r.checked_at),
            failing_since=failing_since.get(r.connection_id),
        )
        for r in rows
        if r.connection_id is not None
    }


def _first_failures_after(
    s: Session, last_ok: dict[int, int], failing: list[Health]
) -> dict[int, datetime]:
    if not failing:
        return {}
    ids = [h.connection_id for h in failing if h.connection_id is not None]
    q = (
        select(Health.connection_id, Health.id, Health.checked_at)
        .where(Health.connection_id.in_(ids), Health.status != "healthy")
        .order_by(Health.connection_id, Health.id)
    )
    out: dict[int, datetime] = {}
    for cid, hid, ts in s.execute(q):
        if cid is None or cid in out or hid <= last_ok.get(cid, 0):
            continue
        out[cid] = _aware(ts)
    return out
