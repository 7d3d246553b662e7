"""Incidents, the notifications they cause, and their delivery (SPEC section 10).

- ``record``: opening and resolving incidents from health results, in the caller's transaction,
  with the outbox events they cause (``record_checks``).
- ``events``: the event bodies; ``signature``: the ``X-Reconciler-Signature`` header;
  ``slack``: the Slack incoming-webhook body.
- ``delivery``: POSTing pending events after the commit, keeping what fails (``deliver``).
- ``settings``: the environment variables, read and checked once.
"""

from reconciler.incidents.delivery import DeliveryReport, deliver, pending_count
from reconciler.incidents.events import OPENED, RESOLVED
from reconciler.incidents.record import (
    CheckOutcome,
    IncidentChange,
    open_incidents,
    record_checks,
    record_health_rows,
    resolve_unchecked,
)
from reconciler.incidents.settings import NotifySettings
from reconciler.incidents.signature import HEADER, sign, verify

__all__ = [
    "HEADER",
    "OPENED",
    "RESOLVED",
    "CheckOutcome",
    "DeliveryReport",
    "IncidentChange",
    "NotifySettings",
    "deliver",
    "open_incidents",
    "pending_count",
    "record_checks",
    "record_health_rows",
    "resolve_unchecked",
    "sign",
    "verify",
]
