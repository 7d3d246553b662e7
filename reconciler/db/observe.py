"""Reading the observed state: every table once, whatever the number of organizations."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, func, select
from sqlalchemy.orm import Session

from reconciler.core.state import (
    Observed,
    ObservedConnection,
    ObservedCredential,
    ObservedHealth,
    ObservedResource,
)
from reconciler.core.state import PendingCreate as ObservedPending
from reconciler.db.records import (
    connection_of,
    credential_of,
    health_of,
    instance_of,
    resource_of,
)
from reconciler.db.schema import (
    Connection,
    Credential,
    Health,
    Instance,
    PendingCreate,
    Resource,
    StateMeta,
)
from reconciler.db.schema_version import check_schema

# Core columns of the tables: selecting them returns plain rows, with no ORM loading step.
_I = Instance.__table__.c
_C = Connection.__table__.c
_CR = Credential.__table__.c
_R = Resource.__table__.c
_H = Health.__table__.c
_P = PendingCreate.__table__.c
_S = StateMeta.__table__.c  # Core columns here too: a plan configures no ORM mapper


def observe(engine: Engine, organizations: Collection[str] | None = None) -> Observed:
    """The whole observed state (or that of some organizations) in a constant number of queries.

    Refuses (ConfigError) a schema older or newer than this tool's: every command reads here."""
    if not check_schema(engine):
        return Observed(exists=False)
    with Session(engine) as s:
        return observe_in(s, organizations)


def observe_in(s: Session, organizations: Collection[str] | None = None) -> Observed:
    """The observed state read through ``s``, in the same constant number of queries.

    Rows come back as the driver's plain tuples of the columns the records need (no ORM
    objects, no result rows: building and tracking 47,000 ORM objects cost ten times the
    fetch, result rows twice), and go straight into the frozen records of
    ``reconciler.core.state`` through ``reconciler.db.records``.
    """
    meta = s.execute(select(_S.lineage, _S.serial).where(_S.id == 1)).first()
    iq = select(_I.id, _I.organization, _I.provider, _I.status, _I.managed_by)
    if organizations is not None:
        iq = iq.where(_I.organization.in_(sorted(organizations)))
    instances = _tuples(s, iq)
    ids = [row[0] for row in instances]
    inst_filter = organizations is not None

    cq = select(
        _C.instance_id,
        _C.id,
        _C.user_email,
        _C.status,
        _C.managed_by,
        _C.deletion_policy,
        _C.prevent_destroy,
        _C.identity,
    )
    rq = select(
        _R.instance_id,
        _R.id,
        _R.kind,
        _R.identity,
        _R.spec,
        _R.is_default,
        _R.managed_by,
        _R.remote_id,
        _R.remote_generation,
        _R.remote_replaces,
        _R.remote_adopted,
    )
    if inst_filter:
        cq = cq.where(_C.instance_id.in_(ids))
        rq = rq.where(_R.instance_id.in_(ids))
    connections = _tuples(s, cq)
    conn_ids = [row[1] for row in connections]
    crq = select(
        _CR.connection_id, _CR.id, _CR.field, _CR.key_id, _CR.fingerprint, _CR.fingerprint_key_id
    )
    if inst_filter:
        crq = crq.where(_CR.connection_id.in_(conn_ids))
    creds: dict[int, dict[str, ObservedCredential]] = defaultdict(dict)
    for row in _tuples(s, crq):
        creds[row[0]][row[2]] = credential_of(row[1:])
    health = _last_health(s, conn_ids if inst_filter else None)
    resources: dict[int, list[ObservedResource]] = defaultdict(list)
    for row in _tuples(s, rq.order_by(_R.kind, _R.identity)):
        resources[row[0]].append(resource_of(row[1:]))
    by_instance: dict[int, list[ObservedConnection]] = defaultdict(list)
    connections.sort(key=lambda c: (c[0], c[2]))
    for row in connections:
        cid = row[1]
        by_instance[row[0]].append(connection_of(row[1:], creds.get(cid) or {}, health.get(cid)))
    out = {
        (row[1], row[2]): instance_of(
            row,
            tuple(by_instance.get(row[0], ())),
            tuple(resources.get(row[0], ())),
        )
        for row in instances
    }
    pq = select(_P.organization, _P.provider, _P.kind, _P.identity, _P.generation, _P.replaces)
    if organizations is not None:
        pq = pq.where(_P.organization.in_(sorted(organizations)))
    pending = tuple(ObservedPending(*p) for p in s.execute(pq.order_by(_P.id)))
    return Observed(
        instances=out,
        lineage=meta.lineage if meta else "",
        serial=meta.serial if meta else 0,
        exists=True,
        pending=pending,
    )


def _tuples(s: Session, query: Select[Any]) -> list[Any]:
    """Every row of a Core select as the driver's tuples: no result rows, no type processing
    (so SQLite's booleans are 0 and 1, and date-times are text: the builders know)."""
    result = s.execute(query)
    try:
        return list(result.cursor.fetchall())  # type: ignore[attr-defined]
    finally:
        result.close()


def _last_health(s: Session, conn_ids: list[int] | None) -> dict[int, ObservedHealth]:
    """Last health row per connection, and since when it has been failing (one query, three
    when some are failing)."""
    last_id = select(_H.connection_id, func.max(_H.id).label("last")).group_by(_H.connection_id)
    last_ok = (
        select(_H.connection_id, func.max(_H.id).label("ok"))
        .where(_H.status == "healthy")
        .group_by(_H.connection_id)
    )
    if conn_ids is not None:
        last_id = last_id.where(_H.connection_id.in_(conn_ids))
        last_ok = last_ok.where(_H.connection_id.in_(conn_ids))
    lasts = last_id.subquery()
    rows = _tuples(
        s,
        select(
            _H.connection_id, _H.status, _H.failure_type, _H.message, _H.response_ms, _H.checked_at
        ).join(lasts, _H.id == lasts.c.last),
    )
    failing = [row[0] for row in rows if row[1] != "healthy" and row[0] is not None]
    failing_since: dict[int, datetime] = {}
    if failing:
        ok = {cid: hid for cid, hid in s.execute(last_ok).all() if cid is not None}
        failing_since = _first_failures_after(s, ok, failing)
    read_time = _processor(s, _H.checked_at)  # what SQLAlchemy makes of the driver's value
    return {
        row[0]: health_of(row[1:], read_time(row[5]), failing_since.get(row[0]))
        for row in rows
        if row[0] is not None
    }


def _processor(s: Session, column: ColumnElement[Any]) -> Callable[[Any], Any]:
    """The conversion SQLAlchemy applies to the driver's values of ``column`` (a UTC
    date-time from SQLite's text, say); the values themselves when there is none."""
    dialect = s.get_bind().dialect
    process = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _first_failures_after(
    s: Session, last_ok: dict[int, int], failing: list[int]
) -> dict[int, datetime]:
    """For each failing connection, the time of its first failure after its last success."""
    if not failing:
        return {}
    q = (
        select(_H.connection_id, _H.id, _H.checked_at)
        .where(_H.connection_id.in_(failing), _H.status != "healthy")
        .order_by(_H.connection_id, _H.id)
    )
    out: dict[int, datetime] = {}
    for cid, hid, ts in s.execute(q):
        if cid is None or cid in out or hid <= last_ok.get(cid, 0):
            continue
        out[cid] = ts
    return out
