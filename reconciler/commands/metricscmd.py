"""reconciler metrics: the fleet's state as OpenMetrics text, for Prometheus or the node
exporter's textfile collector.

Labels never name an organization: every series is keyed by provider, status, failure type or
command, all bounded by the catalog, so the number of series is the same for 3 organizations
and for 30,000 (a label per organization is what brings a Prometheus down). Every combination
of the catalog's providers and the known statuses is printed, zeros included, so a series does
not appear and vanish as connections come and go.

Only gauges and histograms are used: their text is the same in OpenMetrics and in the older
Prometheus format that the textfile collector reads.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from reconciler.core.catalog import load_catalog
from reconciler.db.engine import database_exists, database_url, has_schema, make_engine
from reconciler.db.schema import Connection, Health, Incident, Instance, Notification, Run

INSTANCE_STATUSES = ("active", "inactive", "error")
CONNECTION_STATUSES = ("connected", "error")
FAILURE_TYPES = ("invalid_credentials", "unreachable", "rate_limited", "oauth_denied")
COMMANDS = ("apply", "health", "notify")
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds


class Exposition:
    """OpenMetrics text, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# TYPE {name} {kind}", f"# HELP {name} {help_text}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(
            f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"
        )

    def text(self) -> str:
        return "\n".join([*self.lines, "# EOF"]) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def _le(bound: float) -> str:
    return repr(float(bound))


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def metrics_text(catalog_dir: str | None, environ: Mapping[str, str]) -> str:
    """The exposition; reads the database (if it exists), writes nothing."""
    providers = set(load_catalog(catalog_dir).providers)
    url = database_url(environ)
    engine = make_engine(url) if database_exists(url) else None
    if engine is not None and not has_schema(engine):
        engine = None
    return _exposition(engine, providers)


def _counts(s: Session, query: object) -> dict[tuple[str, ...], int]:
    return {tuple(row[:-1]): int(row[-1]) for row in s.execute(query)}  # type: ignore[call-overload]


def _exposition(engine: Engine | None, providers: set[str]) -> str:
    out = Exposition()
    instances: dict[tuple[str, ...], int] = {}
    connections: dict[tuple[str, ...], int] = {}
    incidents: dict[tuple[str, ...], int] = {}
    histogram: dict[str, tuple[list[int], int, float]] = {}
    runs: dict[str, tuple[datetime, int]] = {}
    organizations = pending = 0
    oldest: datetime | None = None
    if engine is not None:
        with Session(engine) as s:
            instances = _counts(
                s,
                select(Instance.provider, Instance.status, func.count()).group_by(
                    Instance.provider, Instance.status
                ),
            )
            connections = _counts(
                s,
                select(Instance.provider, Connection.status, func.count())
                .join(Instance, Instance.id == Connection.instance_id)
                .group_by(Instance.provider, Connection.status),
            )
            incidents = _counts(
                s,
                select(Incident.provider, Incident.failure_type, func.count())
                .where(Incident.open_key.is_not(None))
                .group_by(Incident.provider, Incident.failure_type),
            )
            histogram = _durations(s)
            organizations = s.scalar(select(func.count(func.distinct(Instance.organization)))) or 0
            pending, oldest = s.execute(
                select(func.count(), func.min(Notification.created_at)).where(
                    Notification.delivered_at.is_(None)
                )
            ).one()
            runs = {r.command: (_aware(r.finished_at), r.exit_code) for r in s.scalars(select(Run))}
    every = sorted(
        providers | {k[0] for k in [*instances, *connections, *incidents]} | set(histogram)
    )

    out.family("reconciler_organizations", "gauge", "Organizations with at least one instance.")
    out.sample("reconciler_organizations", organizations)
    out.family("reconciler_instances", "gauge", "Instances by provider and status.")
    for p in every:
        for st in _with_seen(INSTANCE_STATUSES, instances, p):
            out.sample("reconciler_instances", instances.get((p, st), 0), provider=p, status=st)
    out.family("reconciler_connections", "gauge", "Connections by provider and status.")
    for p in every:
        for st in _with_seen(CONNECTION_STATUSES, connections, p):
            out.sample("reconciler_connections", connections.get((p, st), 0), provider=p, status=st)
    out.family("reconciler_incidents_open", "gauge", "Open incidents by provider and failure type.")
    for p in every:
        for ft in _with_seen(FAILURE_TYPES, incidents, p):
            out.sample(
                "reconciler_incidents_open", incidents.get((p, ft), 0), provider=p, failure_type=ft
            )
    name = "reconciler_health_check_duration_seconds"
    out.family(name, "histogram", "Response time of the recorded health checks, by provider.")
    for p in every:
        buckets, count, total = histogram.get(p, ([0] * len(BUCKETS), 0, 0.0))
        for bound, n in zip(BUCKETS, buckets, strict=True):
            out.sample(f"{name}_bucket", n, provider=p, le=_le(bound))
        out.sample(f"{name}_bucket", count, provider=p, le="+Inf")
        out.sample(f"{name}_count", count, provider=p)
        out.sample(f"{name}_sum", total, provider=p)
    out.family(
        "reconciler_last_run_timestamp_seconds",
        "gauge",
        "When each command last finished (Unix time; 0: never).",
    )
    for cmd in COMMANDS:
        ts = runs[cmd][0].timestamp() if cmd in runs else 0
        out.sample("reconciler_last_run_timestamp_seconds", round(ts, 3), command=cmd)
    out.family(
        "reconciler_last_run_exit_code",
        "gauge",
        "Exit code of each command's last run (-1: never).",
    )
    for cmd in COMMANDS:
        out.sample(
            "reconciler_last_run_exit_code", runs[cmd][1] if cmd in runs else -1, command=cmd
        )
    out.family(
        "reconciler_notifications_pending",
        "gauge",
        "Events not yet delivered to RECONCILER_NOTIFY_URL.",
    )
    out.sample("reconciler_notifications_pending", pending)
    out.family(
        "reconciler_notifications_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest undelivered event (0: none).",
    )
    age = (datetime.now(UTC) - _aware(oldest)).total_seconds() if oldest is not None else 0
    out.sample("reconciler_notifications_oldest_pending_age_seconds", round(max(age, 0.0), 3))
    return out.text()


def _with_seen(
    known: Iterable[str], counts: Mapping[tuple[str, ...], int], provider: str
) -> list[str]:
    """The known values, plus any other the database holds for this provider."""
    values = list(known)
    values += sorted({k[1] for k in counts if k[0] == provider and k[1] not in values})
    return values


def _durations(s: Session) -> dict[str, tuple[list[int], int, float]]:
    """Per provider: cumulative bucket counts, count and sum (seconds) of recorded checks."""
    ms = Health.response_ms
    columns = [func.sum(case((ms <= int(b * 1000), 1), else_=0)) for b in BUCKETS]
    query = (
        select(Instance.provider, func.count(), func.sum(ms), *columns)
        .join(Instance, Instance.id == Health.instance_id)
        .group_by(Instance.provider)
    )
    out = {}
    for provider, count, total, *buckets in s.execute(query):
        out[provider] = ([int(b or 0) for b in buckets], int(count), float(total or 0) / 1000)
    return out


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place, so a
    scraper reads the old file or the new one, never half of one. The temporary name does not
    end in ``.prom``, so the textfile collector never picks it up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
