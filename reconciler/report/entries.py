"""Reading what the report shows beyond the observed state: health history and audit entries.

Both are bounded so a report of a large, long-lived database stays small: the last
``HEALTH_POINTS`` checks of each connection and the newest ``AUDIT_ROWS`` audit entries.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from reconciler.db.history import HealthPoint, recent_checks
from reconciler.db.schema import AuditEntry

HEALTH_POINTS = 60
AUDIT_ROWS = 1000


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


def health_history(
    engine: Engine, connection_ids: Collection[int], *, limit: int = HEALTH_POINTS
) -> dict[int, list[HealthPoint]]:
    """The last ``limit`` checks of each connection, oldest first."""
    with Session(engine) as s:
        return recent_checks(s, connection_ids, limit=limit)


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
                    created_at=r.created_at,
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
