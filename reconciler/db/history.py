"""Health history per connection: the recent checks (for charts) and what they add up to
(consecutive failures, response-time percentiles, for ``status``). One bounded query: a window
function keeps the last N checks of each connection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reconciler.db.schema import Health


@dataclass(frozen=True)
class HealthPoint:
    """One recorded check of a connection."""

    checked_at: datetime
    response_ms: int
    healthy: bool
    failure_type: str | None = None


@dataclass(frozen=True)
class History:
    checks: int  # how many of the last ``window`` checks there are
    consecutive_failures: int
    p50_ms: int | None
    p95_ms: int | None


def recent_checks(
    s: Session, connection_ids: Collection[int] | None = None, *, limit: int = 20
) -> dict[int, list[HealthPoint]]:
    """The last ``limit`` checks of each connection (or of the given ones), oldest first."""
    if connection_ids is not None and not connection_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Health.connection_id, order_by=(Health.checked_at.desc(), Health.id.desc())
        )
        .label("rank")
    )
    inner = select(
        Health.connection_id,
        Health.checked_at,
        Health.id,
        Health.response_ms,
        Health.status,
        Health.failure_type,
        rank,
    ).where(Health.connection_id.is_not(None))
    if connection_ids is not None:
        inner = inner.where(Health.connection_id.in_(list(connection_ids)))
    sub = inner.subquery()
    query = (
        select(sub)
        .where(sub.c.rank <= limit)
        .order_by(sub.c.connection_id, sub.c.checked_at, sub.c.id)
    )
    out: dict[int, list[HealthPoint]] = defaultdict(list)
    for row in s.execute(query):
        out[row.connection_id].append(
            HealthPoint(
                checked_at=row.checked_at,
                response_ms=max(int(row.response_ms or 0), 0),
                healthy=row.status == "healthy",
                failure_type=row.failure_type,
            )
        )
    return dict(out)


def percentile(values: Sequence[int], p: float) -> int | None:
    """Nearest-rank percentile (p in 0..100) of a list of response times."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def summarize(points: Sequence[HealthPoint]) -> History:
    """Consecutive failures up to now, and percentiles of the healthy checks' times."""
    failures = 0
    for p in reversed(points):  # newest first
        if p.healthy:
            break
        failures += 1
    times = [p.response_ms for p in points if p.healthy] or [p.response_ms for p in points]
    return History(len(points), failures, percentile(times, 50), percentile(times, 95))


def health_history(s: Session, window: int = 20) -> dict[int, History]:
    """What the last ``window`` checks of every connection add up to."""
    return {cid: summarize(points) for cid, points in recent_checks(s, limit=window).items()}
