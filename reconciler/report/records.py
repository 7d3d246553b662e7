"""Reading what the report shows beyond the observed state: health history and audit entries.

Both are bounded so a report of a large, long-lived database stays small: the last
``HEALTH_POINTS`` checks of each connection and the newest ``AUDIT_ROWS`` audit entries.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from reconciler.db.schema import AuditEntry, Health

HEALTH_POINTS = 60
AUDIT_ROWS = 1000


@dataclass(frozen=True)
class HealthPoint:
    """One recorded check of a connection, as the chart needs it."""

    checked_at: datetime
    response_ms: int
    healthy: bool
    failure_type: str | None = None


@dataclass(frozen=True)
class AuditRow:
    seq: int
    created_at: datetime
    organization: str
    actor: str
    action: str
    target: str
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...] = ()
    total: int = 0  # entries in the database; more than len(rows) when the page is cut


def _aware(ts: datetime) -> datetime:
    """In UTC: SQLite hands back naive datetimes (the tool writes UTC), PostgreSQL hands them
    back in the session's time zone."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def health_history(
    engine: Engine, connection_ids: Collection[int], *, limit: int = HEALTH_POINTS
) -> dict[int, list[HealthPoint]]:
    """The last ``limit`` checks of each connection, oldest first (one query, a window
    function keeps it bounded per connection)."""
    if not connection_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Health.connection_id, order_by=(Health.checked_at.desc(), Health.id.desc())
        )
        .label("rank")
    )
    inner = (
        select(
            Health.connection_id,
            Health.checked_at,
            Health.id,
            Health.response_ms,
            Health.status,
            Health.failure_type,
            rank,
        )
        .where(Health.connection_id.in_(list(connection_ids)))
        .subquery()
    )
    query = (
        select(inner)
        .where(inner.c.rank <= limit)
        .order_by(inner.c.connection_id, inner.c.checked_at, inner.c.id)
    )
    out: dict[int, list[HealthPoint]] = defaultdict(list)
    with Session(engine) as s:
        for row in s.execute(query):
            out[row.connection_id].append(
                HealthPoint(
                    checked_at=_aware(row.checked_at),
                    response_ms=max(int(row.response_ms or 0), 0),
                    healthy=row.status == "healthy",
                    failure_type=row.failure_type,
                )
            )
    return dict(out)


def _details(raw: str | None) -> dict[str, Any]:
    """Audit details are JSON without secret values by design; anything unreadable is shown
    as absent rather than raw."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def audit_entries(engine: Engine, *, limit: int = AUDIT_ROWS) -> AuditPage:
    """The newest ``limit`` audit entries, newest first, and how many there are in all."""
    with Session(engine) as s:
        total = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)).all()
        return AuditPage(
            rows=tuple(
                AuditRow(
                    seq=r.seq,
                    created_at=_aware(r.created_at),
                    organization=r.organization,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    method=r.method,
                    details=_details(r.details),
                    git_commit=r.git_commit,
                )
                for r in rows
            ),
            total=total,
        )
