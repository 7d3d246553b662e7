"""The events a receiver gets: ``incident.opened`` and ``incident.resolved``.

The body is built once, when the event is recorded, and stored as sent: every delivery attempt
carries the same ``id`` and the same bytes. It holds names, times and the SPEC section 4
messages only, never a credential, a URL of the receiver or a signing secret.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from reconciler.db.schema import Incident, Notification

FORMAT_VERSION = 1
OPENED = "incident.opened"
RESOLVED = "incident.resolved"


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def new_incident_uid() -> str:
    return f"inc_{uuid.uuid4().hex}"


def event_body(kind: str, incident: Incident, *, message: str, now: datetime) -> dict[str, Any]:
    """The JSON object of one event (see docs/notifications.md)."""
    body: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "id": new_event_id(),
        "type": kind,
        "created_at": iso(now),
        "incident_id": incident.uid,
        "organization": incident.organization,
        "provider": incident.provider,
        "address": f"{incident.organization}/{incident.provider}",
        "failure_type": incident.failure_type,
        "message": message,
        "opened_at": iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at),
        "failed_checks": incident.failures,
    }
    if kind == RESOLVED and incident.resolved_at is not None:
        body["failure_message"] = incident.message
        body["open_seconds"] = int(
            (_aware(incident.resolved_at) - _aware(incident.opened_at)).total_seconds()
        )
    return body


def outbox_row(body: dict[str, Any], incident: Incident, now: datetime) -> Notification:
    return Notification(
        event_id=body["id"],
        type=body["type"],
        incident_id=incident.id,
        body=json.dumps(body, sort_keys=True, separators=(",", ":")),
        created_at=now,
        attempts=0,
        next_attempt_at=now,
    )


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
