"""Health history per connection: consecutive failures and response-time percentiles."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reconciler.db.schema import Health


@dataclass(frozen=True)
class History:
    checks: int  # how many of the last ``window`` checks there are
    consecutive_failures: int
    p50_ms: int | None
    p95_ms: int | None


def percentile(values: list[int], p: float) -> int | None:
    """Nearest-rank percentile (p in 0..100) of a list of response times."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def health_history(s: Session, window: int = 20) -> dict[int, History]:
    """The last ``window`` checks of every connection, in one query."""
    rank = (
        func.row_number()
        .over(partition_by=Health.connection_id, order_by=Health.id.desc())
        .label("rank")
    )
    recent = select(Health.connection_id, Health.status, Health.response_ms, rank).subquery()
    q = (
        select(recent.c.connection_id, recent.c.status, recent.c.response_ms)
        .where(recent.c.rank <= window, recent.c.connection_id.is_not(None))
        .order_by(recent.c.connection_id, recent.c.rank)
    )
    rows: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for cid, status, ms in s.execute(q):
        rows[cid].append((status, ms))
    out = {}
    for cid, checks in rows.items():
        failures = 0
        for status, _ in checks:  # newest first
            if status == "healthy":
                break
            failures += 1
        times = [ms for status, ms in checks if status == "healthy"] or [ms for _, ms in checks]
        out[cid] = History(len(checks), failures, percentile(times, 50), percentile(times, 95))
    return out
