"""Open incidents as ``status`` shows them (text and JSON) and the report lists them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.incidents import open_incidents


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def open_incident_rows(
    engine: Engine | None, now: datetime | None = None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Open incidents by (organization, provider), oldest first, as JSON-ready mappings."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    if engine is None:
        return out
    now = now or datetime.now(UTC)
    with Session(engine) as s:
        for inc in open_incidents(s):
            opened = _aware(inc.opened_at)
            out[(inc.organization, inc.provider)].append(
                {
                    "id": inc.uid,
                    "failure_type": inc.failure_type,
                    "message": inc.message,
                    "opened_at": opened.isoformat(timespec="seconds"),
                    "open_seconds": max(int((now - opened).total_seconds()), 0),
                    "failed_checks": inc.failures,
                    "last_failed_at": _aware(inc.last_failed_at).isoformat(timespec="seconds"),
                }
            )
    return out


def duration(seconds: int) -> str:
    """``45s``, ``12m``, ``3h 05m``, ``2d 4h``: how long an incident has been open."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        return f"{hours}h {minutes % 60:02d}m"
    return f"{days}d {hours % 24}h"


def incidents_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The "Open incidents" block of ``status`` (empty when there is none), oldest first."""
    found = sorted(
        (
            (inc["opened_at"], f"{r['organization']}/{r['provider']}", inc)
            for r in rows
            for inc in r.get("incidents", ())
        ),
        key=lambda x: (x[0], x[1]),
    )
    if not found:
        return ""
    lines = [f"Open incidents ({len(found)}):"]
    for opened, address, inc in found:
        lines.append(
            f"  {address} {inc['failure_type']}: open for {duration(inc['open_seconds'])} "
            f"(since {opened}, {_checks(inc['failed_checks'])}): {inc['message']}"
        )
    return "\n".join(lines) + "\n\n"


def _checks(n: int) -> str:
    return f"{n} failed check{'s' if n != 1 else ''}"
