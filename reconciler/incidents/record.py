"""Opening and resolving incidents from health results, in the caller's transaction.

Pure bookkeeping on the rows; the caller (``apply`` writing an organization, ``health``
recording its results) passes its session, so the incidents and the outbox events they cause
commit or roll back together with the health rows.

Rules (SPEC section 10), per (organization, provider, failure type):
- a failing check opens an incident unless one is open for that key; otherwise it counts as
  one more failure of the open one (no new incident, no new event);
- any failing check of the connection resets the healthy streak of its open incidents, so a
  connection that flaps (failing, healthy, failing) within the resolve window stays one
  incident;
- ``resolve_after`` consecutive healthy checks resolve every open incident of the connection.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reconciler.db.schema import Incident, Instance
from reconciler.incidents.events import (
    OPENED,
    RESOLVED,
    event_body,
    new_incident_uid,
    outbox_row,
)
from reconciler.incidents.settings import NotifySettings

log = logging.getLogger("reconciler.incidents")

MAX_IN = 500  # organizations named in one query; beyond, every open incident is read


@dataclass(frozen=True)
class CheckOutcome:
    """One recorded health result, as incidents need it."""

    organization: str
    provider: str
    healthy: bool
    failure_type: str | None
    message: str
    checked_at: datetime


@dataclass(frozen=True)
class IncidentChange:
    """What a check did to an incident: ``opened`` or ``resolved``."""

    kind: str
    organization: str
    provider: str
    failure_type: str
    incident_uid: str


def open_key(organization: str, provider: str, failure_type: str) -> str:
    return f"{organization}/{provider}/{failure_type}"


def record_checks(
    s: Session, checks: Iterable[CheckOutcome], settings: NotifySettings
) -> list[IncidentChange]:
    """Apply ``checks`` (in the order they were made) to the incidents; write the events.

    Flushes its rows; the caller commits."""
    ordered = sorted(checks, key=lambda c: _aware(c.checked_at))
    if not ordered:
        return []
    work = _Work(settings.resolve_after)
    opened = _open_incidents(s, {c.organization for c in ordered})
    for c in ordered:
        mine = opened[(c.organization, c.provider)]
        if c.healthy:
            _healthy(mine, c, work)
        else:
            _failing(mine, c, work)
    work.lost = _insert_new(s, work.new)
    return _finish(s, work, settings)


@dataclass
class _Work:
    """What a batch of checks does: incidents to open, events to write, changes to report."""

    resolve_after: int
    new: list[Incident] = field(default_factory=list)
    events: list[tuple[str, Incident, str, str | None]] = field(default_factory=list)
    changes: list[IncidentChange] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)  # new ones a concurrent command opened first


def _finish(s: Session, work: _Work, settings: NotifySettings) -> list[IncidentChange]:
    """Write the events (into the outbox, when a receiver is configured) and flush."""
    if settings.enabled:
        for kind, inc, message, resolution in work.events:
            if inc.uid in work.lost:
                continue
            body = event_body(kind, inc, message=message, now=_now())
            if resolution is not None:
                body["resolution"] = resolution
            s.add(outbox_row(body, inc, _now()))
    s.flush()
    return [c for c in work.changes if c.incident_uid not in work.lost]


# locked (PostgreSQL), in one order: a concurrent command that resolves or counts the same
# incident waits for this transaction and then sees its result, so no incident is resolved
# twice (two events with two ids)
_OPEN = (
    select(Incident).where(Incident.open_key.is_not(None)).order_by(Incident.id).with_for_update()
)
# apply: one organization, once per organization written (built once: one cache key)
_OPEN_OF_ONE = _OPEN.where(Incident.organization == bindparam("org"))


def _open_incidents(
    s: Session, organizations: set[str]
) -> defaultdict[tuple[str, str], list[Incident]]:
    out: defaultdict[tuple[str, str], list[Incident]] = defaultdict(list)
    if len(organizations) == 1:  # no IN list to expand
        rows = s.scalars(_OPEN_OF_ONE, {"org": next(iter(organizations))})
    elif len(organizations) <= MAX_IN:  # a big health run: all of them
        rows = s.scalars(_OPEN.where(Incident.organization.in_(sorted(organizations))))
    else:
        rows = s.scalars(_OPEN)
    for inc in rows:
        if inc.organization in organizations:
            out[(inc.organization, inc.provider)].append(inc)
    return out


def _healthy(mine: list[Incident], c: CheckOutcome, work: _Work) -> None:
    for inc in list(mine):
        inc.healthy_streak += 1
        if inc.healthy_streak >= work.resolve_after:
            mine.remove(inc)
            _resolve(inc, c.checked_at, c.message, "healthy", work)


def _failing(mine: list[Incident], c: CheckOutcome, work: _Work) -> None:
    failure = c.failure_type or "unknown"
    for other in mine:
        other.healthy_streak = 0
    same = next((i for i in mine if i.failure_type == failure), None)
    if same is not None:
        same.failures += 1
        same.last_failed_at = c.checked_at
        same.message = c.message
        return
    inc = Incident(
        uid=new_incident_uid(),
        organization=c.organization,
        provider=c.provider,
        failure_type=failure,
        open_key=open_key(c.organization, c.provider, failure),
        message=c.message,
        opened_at=c.checked_at,
        last_failed_at=c.checked_at,
        resolved_at=None,
        failures=1,
        healthy_streak=0,
    )
    mine.append(inc)  # later checks of this batch count on it (or resolve it)
    work.new.append(inc)
    log.debug("opened incident %s for %s/%s", inc.uid, c.organization, c.provider)
    work.events.append((OPENED, inc, c.message, None))
    work.changes.append(IncidentChange("opened", inc.organization, inc.provider, failure, inc.uid))


def _resolve(inc: Incident, when: datetime, message: str, resolution: str, work: _Work) -> None:
    inc.resolved_at = when
    inc.open_key = None
    log.debug("resolved incident %s (%s)", inc.uid, resolution)
    work.events.append((RESOLVED, inc, message, resolution))
    work.changes.append(
        IncidentChange("resolved", inc.organization, inc.provider, inc.failure_type, inc.uid)
    )


_COLUMNS = (
    "uid",
    "organization",
    "provider",
    "failure_type",
    "open_key",
    "message",
    "opened_at",
    "last_failed_at",
    "resolved_at",
    "failures",
    "healthy_streak",
)


def _insert_new(s: Session, new: list[Incident]) -> set[str]:
    """Insert the new incidents, a few statements for thousands (an outage opens them all at
    once), each ``ON CONFLICT (open_key) DO NOTHING``: one that a concurrent command opened
    first is not inserted, and its failures count on that one instead (no second event).
    Returns the uids of those; the others are added to the session with their ids."""
    if not new:
        return set()
    insert = postgresql_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    ids: dict[str, int] = {}
    for start in range(0, len(new), MAX_IN):
        chunk = new[start : start + MAX_IN]
        s.execute(
            insert(Incident)
            .values([{c: getattr(inc, c) for c in _COLUMNS} for inc in chunk])
            .on_conflict_do_nothing()
        )
        found = s.execute(
            select(Incident.uid, Incident.id).where(Incident.uid.in_([i.uid for i in chunk]))
        )
        ids.update({uid: id_ for uid, id_ in found})
    lost = set()
    for inc in new:
        if inc.uid not in ids:
            lost.add(inc.uid)
            if inc.open_key is not None:
                s.execute(
                    update(Incident)
                    .where(Incident.open_key == inc.open_key)
                    .values(
                        failures=Incident.failures + inc.failures,
                        last_failed_at=inc.last_failed_at,
                        healthy_streak=0,
                    )
                )
            continue
        inc.id = ids[inc.uid]
    return lost


def resolve_unchecked(s: Session, settings: NotifySettings) -> list[IncidentChange]:
    """Resolve the open incidents of connections that are no longer checked: removed (torn
    down, or deleted in the SaaS) or made inactive. Otherwise they would stay open forever."""
    found = list(
        s.scalars(
            select(Incident)
            .where(Incident.open_key.is_not(None))
            .order_by(Incident.id)
            .with_for_update()
        )
    )
    if not found:
        return []
    orgs = sorted({i.organization for i in found})
    status: dict[tuple[str, str], str] = {}
    for start in range(0, len(orgs), MAX_IN):
        rows = s.execute(
            select(Instance.organization, Instance.provider, Instance.status).where(
                Instance.organization.in_(orgs[start : start + MAX_IN])
            )
        )
        status.update({(o, p): st for o, p, st in rows})
    work = _Work(settings.resolve_after)
    now = _now()
    for inc in found:
        st = status.get((inc.organization, inc.provider))
        address = f"{inc.organization}/{inc.provider}"
        if st is None:
            message = f"{address} was removed; it is no longer checked."
            _resolve(inc, now, message, "removed", work)
        elif st == "inactive":
            message = f"{address} was made inactive; it is no longer checked."
            _resolve(inc, now, message, "inactive", work)
    return _finish(s, work, settings)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def open_incidents(s: Session, organizations: Sequence[str] | None = None) -> list[Incident]:
    """Every open incident (of these organizations), oldest first."""
    query = select(Incident).where(Incident.open_key.is_not(None))
    if organizations is not None:
        query = query.where(Incident.organization.in_(list(organizations)))
    return list(s.scalars(query.order_by(Incident.opened_at, Incident.id)))


def record_health_rows(
    s: Session,
    instances: Iterable[Instance],
    rows: Sequence[Mapping[str, Any]],
    settings: NotifySettings | None = None,
) -> list[IncidentChange]:
    """``record_checks`` for ``integration_health`` rows (as column mappings) of ``instances``;
    the settings default to the process environment (checked by the command beforehand)."""
    where = {i.id: (i.organization, i.provider) for i in instances}
    checks = [
        CheckOutcome(
            *where[r["instance_id"]],
            healthy=r["status"] == "healthy",
            failure_type=r["failure_type"],
            message=r["message"],
            checked_at=r["checked_at"],
        )
        for r in rows
        if r["instance_id"] in where
    ]
    return record_checks(s, checks, settings or NotifySettings.from_environ(os.environ))
