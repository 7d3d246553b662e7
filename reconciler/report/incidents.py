"""Open incidents for the report's overview, which lists them first: the oldest at the top,
each with how long it has been open and a link to its organization's page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from reconciler.commands.incidentviews import duration, open_incident_rows
from reconciler.report.pages import organization_filename


@dataclass(frozen=True)
class IncidentRow:
    organization: str
    provider: str
    failure_type: str
    message: str
    opened_at: str
    open_for: str
    failed_checks: int
    href: str


def open_incidents(engine: Engine) -> tuple[IncidentRow, ...]:
    rows = [
        IncidentRow(
            organization=org,
            provider=provider,
            failure_type=inc["failure_type"],
            message=inc["message"],
            opened_at=inc["opened_at"],
            open_for=duration(inc["open_seconds"]),
            failed_checks=inc["failed_checks"],
            href=organization_filename(org),
        )
        for (org, provider), found in open_incident_rows(engine).items()
        for inc in found
    ]
    return tuple(sorted(rows, key=lambda r: (r.opened_at, r.organization, r.provider)))
