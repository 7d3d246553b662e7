"""Delivering the outbox after the commit: POST each pending event, keep what fails.

At least once: an event is marked delivered only after a 2xx answer, so a receiver may see an
event twice (after a timeout whose request did arrive) and deduplicates by ``id``. Never lost:
a receiver that is down, slow or answering non-2xx leaves the event pending, retried by the
next command with exponential backoff, or right away by ``reconciler notify``.

Nothing here raises for the receiver's sake: a delivery that fails is a line in the report,
never a failed command. The receiver's URL is never printed or stored (Slack's webhook URL is a
credential); problems are named by their kind (``connection refused``, ``HTTP 500``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from reconciler import __version__
from reconciler.db.schema import Notification
from reconciler.incidents.settings import NotifySettings
from reconciler.incidents.signature import HEADER, sign
from reconciler.incidents.slack import slack_body

if TYPE_CHECKING:  # the HTTP stack is imported only when there is something to send
    import httpx

log = logging.getLogger("reconciler.notify")

BATCH = 500  # events read at a time
SLACK_BATCH = 10_000  # events summed up in one Slack message
FIRST_RETRY = 30.0  # seconds; doubled per failed attempt
MAX_RETRY = 3600.0


@dataclass
class DeliveryReport:
    delivered: int = 0
    pending: int = 0  # still undelivered after this round
    problems: list[str] = field(default_factory=list)  # one per failed attempt, no URL
    not_sent: str | None = None  # why nothing was attempted (configuration)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY))


def pending_count(s: Session) -> int:
    return s.scalar(select(func.count()).where(Notification.delivered_at.is_(None))) or 0


def deliver(
    engine: Engine,
    settings: NotifySettings,
    *,
    due_only: bool = True,
    budget: float | None = None,
) -> DeliveryReport:
    """Deliver pending events, oldest first, in batches of ``BATCH``.

    ``due_only``: only events whose backoff has passed (what every command does after its
    work); otherwise every pending event (``reconciler notify``). Stops at the first event the
    receiver cannot be reached for (the rest keep their order for the next round) and, with a
    ``budget`` (seconds; default for ``due_only``: three timeouts, at least 10 s), when it is
    spent, so a command is never held long by its notifications."""
    if budget is None and due_only:
        budget = max(10.0, 3 * settings.timeout)
    deadline = None if budget is None else time.monotonic() + budget
    with Session(engine) as s:
        report = DeliveryReport(pending=pending_count(s))
    if not report.pending:
        return report
    if settings.url is None:
        report.not_sent = "RECONCILER_NOTIFY_URL is not set"
        return report
    if settings.signs and not settings.secret:
        report.not_sent = "RECONCILER_NOTIFY_SECRET is not set (events are signed with it)"
        return report
    import httpx

    now = datetime.now(UTC)
    cursor = 0
    with httpx.Client(
        timeout=httpx.Timeout(settings.timeout),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": f"reconciler/{__version__}"},
    ) as client:
        while True:
            size = SLACK_BATCH if settings.format == "slack" else BATCH
            batch = _batch(engine, cursor, now if due_only else None, size)
            if not batch:
                break
            cursor = batch[-1][0]
            if settings.format == "slack":
                going = _deliver_slack(engine, client, settings.url, batch, report)
            else:
                assert settings.secret is not None
                going = _deliver_signed(
                    engine, client, settings.url, settings.secret, batch, report, deadline
                )
            if not going or (deadline is not None and time.monotonic() > deadline):
                break
    with Session(engine) as s:
        report.pending = pending_count(s)
    return report


def _batch(engine: Engine, after: int, due: datetime | None, size: int) -> list[tuple[Any, ...]]:
    """The next undelivered events after id ``after`` (due by ``due``, when given)."""
    query = select(Notification.id, Notification.body).where(
        Notification.delivered_at.is_(None), Notification.id > after
    )
    if due is not None:
        query = query.where(Notification.next_attempt_at <= due)
    with Session(engine) as s:  # read, then let go: no transaction open while sending
        return [tuple(r) for r in s.execute(query.order_by(Notification.id).limit(size))]


def _deliver_signed(
    engine: Engine,
    client: httpx.Client,
    url: str,
    secret: str,
    batch: list[tuple[Any, ...]],
    report: DeliveryReport,
    deadline: float | None,
) -> bool:
    """Send one event per request, in order; False when the round should stop."""
    delivered: list[int] = []
    going = True
    try:
        for row_id, body in batch:
            raw = body.encode()
            event_id = json.loads(body)["id"]
            headers = {
                "Content-Type": "application/json",
                HEADER: sign(secret, raw),
                "X-Reconciler-Event-Id": event_id,
            }
            problem, down = _post(client, url, raw, headers)
            if problem is None:
                delivered.append(row_id)
                report.delivered += 1
                continue
            _mark(engine, [row_id], problem)
            report.problems.append(problem)
            log.debug("could not deliver %s: %s", event_id, problem)
            if down or (deadline is not None and time.monotonic() > deadline):
                going = False  # the receiver is down: the rest wait, in order
                break
    finally:
        _mark(engine, delivered, None)  # in one statement; a crash before it re-sends them
    return going


def _deliver_slack(
    engine: Engine,
    client: httpx.Client,
    url: str,
    batch: list[tuple[Any, ...]],
    report: DeliveryReport,
) -> bool:
    """One message for the whole batch."""
    events = [json.loads(body) for _, body in batch]
    problem, _ = _post(client, url, slack_body(events), {"Content-Type": "application/json"})
    _mark(engine, [row_id for row_id, _ in batch], problem)
    if problem is None:
        report.delivered += len(batch)
        return True
    report.problems.append(problem)
    return False


def _post(
    client: httpx.Client, url: str, raw: bytes, headers: dict[str, str]
) -> tuple[str | None, bool]:
    """(problem or None, whether the receiver is unreachable). Never raises."""
    import httpx

    try:
        response = client.post(url, content=raw, headers=headers)
    except httpx.TimeoutException:
        return "timed out", True
    except httpx.ConnectError:
        return "connection refused or failed", True
    except Exception as e:  # httpx.HTTPError, InvalidURL...: named by type (no URL in it)
        return f"could not send ({type(e).__name__})", True
    if 200 <= response.status_code < 300:
        return None, False
    return f"HTTP {response.status_code}", False


def _mark(engine: Engine, ids: list[int], problem: str | None) -> None:
    """Count an attempt of each event: delivered, or failed (retried after its backoff)."""
    if not ids:
        return
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        if problem is None:
            values: dict[str, Any] = {"delivered_at": now, "last_error": None}
            for start in range(0, len(ids), BATCH):
                s.execute(
                    update(Notification)
                    .where(
                        Notification.id.in_(ids[start : start + BATCH]),
                        Notification.delivered_at.is_(None),
                    )
                    .values(attempts=Notification.attempts + 1, **values)
                )
            return
        for row in s.scalars(select(Notification).where(Notification.id.in_(ids))):
            row.attempts += 1
            row.next_attempt_at = now + backoff(row.attempts)
            row.last_error = problem
