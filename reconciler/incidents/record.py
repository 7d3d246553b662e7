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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
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
    opened = _open_incidents(s, {c.organization for c in ordered})
    changes: list[IncidentChange] = []
    for c in ordered:
        mine = opened[(c.organization, c.provider)]
        if c.healthy:
            changes += _healthy(s, mine, c, settings)
        else:
            changes += _failing(s, mine, c, settings)
    s.flush()
    return changes


def _open_incidents(
    s: Session, organizations: set[str]
) -> defaultdict[tuple[str, str], list[Incident]]:
    out: defaultdict[tuple[str, str], list[Incident]] = defaultdict(list)
    # locked (PostgreSQL), in one order: a concurrent command that resolves or counts the same
    # incident waits for this transaction and then sees its result, so no incident is
    # resolved twice (two events with two ids)
    query = (
        select(Incident)
        .where(Incident.open_key.is_not(None))
        .order_by(Incident.id)
        .with_for_update()
    )
    if len(organizations) <= MAX_IN:  # apply: one organization; a big health run: all of them
        query = query.where(Incident.organization.in_(sorted(organizations)))
    for inc in s.scalars(query):
        if inc.organization not in organizations:
            continue
        out[(inc.organization, inc.provider)].append(inc)
    return out


def _healthy(
    s: Session, mine: list[Incident], c: CheckOutcome, settings: NotifySettings
) -> list[IncidentChange]:
    changes = []
    for inc in list(mine):
        inc.healthy_streak += 1
        if inc.healthy_streak < settings.resolve_after:
            continue
        mine.remove(inc)
        changes.append(_resolve(s, inc, c.checked_at, c.message, "healthy", settings))
    return changes


def _resolve(
    s: Session,
    inc: Incident,
    when: datetime,
    message: str,
    resolution: str,
    settings: NotifySettings,
) -> IncidentChange:
    inc.resolved_at = when
    inc.open_key = None
    log.debug("resolved incident %s (%s)", inc.uid, resolution)
    if settings.enabled:
        body = _body(RESOLVED, inc, message)
        body["resolution"] = resolution
        s.add(outbox_row(body, inc, _now()))
    return IncidentChange("resolved", inc.organization, inc.provider, inc.failure_type, inc.uid)


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
    now = _now()
    changes = []
    for inc in found:
        st = status.get((inc.organization, inc.provider))
        address = f"{inc.organization}/{inc.provider}"
        if st is None:
            message = f"{address} was removed; it is no longer checked."
            changes.append(_resolve(s, inc, now, message, "removed", settings))
        elif st == "inactive":
            message = f"{address} was made inactive; it is no longer checked."
            changes.append(_resolve(s, inc, now, message, "inactive", settings))
    s.flush()
    return changes


def _failing(
    s: Session, mine: list[Incident], c: CheckOutcome, settings: NotifySettings
) -> list[IncidentChange]:
    failure = c.failure_type or "unknown"
    for other in mine:
        other.healthy_streak = 0
    same = next((i for i in mine if i.failure_type == failure), None)
    if same is not None:
        same.failures += 1
        same.last_failed_at = c.checked_at
        same.message = c.message
        return []
    new = _open(s, c, failure)
    if new is None:  # another process opened it a moment ago: one more failure of that one
        return []
    mine.append(new)
    log.debug("opened incident %s for %s/%s", new.uid, c.organization, c.provider)
    if settings.enabled:
        s.add(outbox_row(_body(OPENED, new, c.message), new, _now()))
    return [IncidentChange("opened", new.organization, new.provider, failure, new.uid)]


def _open(s: Session, c: CheckOutcome, failure: str) -> Incident | None:
    """Insert a new open incident; if a concurrent command opened the same key first (the
    unique ``open_key`` says so), count this check as a failure of that one instead."""
    key = open_key(c.organization, c.provider, failure)
    inc = Incident(
        uid=new_incident_uid(),
        organization=c.organization,
        provider=c.provider,
        failure_type=failure,
        open_key=key,
        message=c.message,
        opened_at=c.checked_at,
        last_failed_at=c.checked_at,
        failures=1,
        healthy_streak=0,
    )
    try:
        with s.begin_nested():
            s.add(inc)
            s.flush()
    except IntegrityError:  # the savepoint's rollback took ``inc`` out of the session
        other = s.scalar(select(Incident).where(Incident.open_key == key))
        if other is not None:
            other.failures += 1
            other.last_failed_at = c.checked_at
        return None
    return inc


def _body(kind: str, inc: Incident, message: str) -> dict[str, Any]:
    return event_body(kind, inc, message=message, now=_now())


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
