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
from typing import Any

import httpx
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from reconciler import __version__
from reconciler.db.schema import Notification
from reconciler.incidents.settings import NotifySettings
from reconciler.incidents.signature import HEADER, sign
from reconciler.incidents.slack import slack_body

log = logging.getLogger("reconciler.notify")

BATCH = 500  # events per delivery round
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


def deliver(engine: Engine, settings: NotifySettings, *, due_only: bool = True) -> DeliveryReport:
    """One delivery round. ``due_only``: only events whose backoff has passed (what every
    command does after its work); otherwise every pending event (``reconciler notify``)."""
    now = datetime.now(UTC)
    with Session(engine) as s:
        query = select(Notification.id, Notification.body, Notification.attempts).where(
            Notification.delivered_at.is_(None)
        )
        if due_only:
            query = query.where(Notification.next_attempt_at <= now)
        batch = [tuple(r) for r in s.execute(query.order_by(Notification.id).limit(BATCH))]
        report = DeliveryReport(pending=pending_count(s))
    if not report.pending:
        return report
    if settings.url is None:
        report.not_sent = "RECONCILER_NOTIFY_URL is not set"
        return report
    if settings.signs and not settings.secret:
        report.not_sent = "RECONCILER_NOTIFY_SECRET is not set (events are signed with it)"
        return report
    if not batch:
        return report
    with httpx.Client(
        timeout=httpx.Timeout(settings.timeout),
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": f"reconciler/{__version__}"},
    ) as client:
        if settings.format == "slack":
            _deliver_slack(engine, client, settings.url, batch, report)
        else:
            assert settings.secret is not None
            budget = max(10.0, 3 * settings.timeout)
            _deliver_signed(engine, client, settings.url, settings.secret, batch, report, budget)
    with Session(engine) as s:
        report.pending = pending_count(s)
    return report


def _deliver_signed(
    engine: Engine,
    client: httpx.Client,
    url: str,
    secret: str,
    batch: list[tuple[Any, ...]],
    report: DeliveryReport,
    budget: float,
) -> None:
    deadline = time.monotonic() + budget
    for row_id, body, attempts in batch:
        raw = body.encode()
        event_id = json.loads(body)["id"]
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(secret, raw),
            "X-Reconciler-Event-Id": event_id,
        }
        problem, down = _post(client, url, raw, headers)
        _mark(engine, [row_id], attempts, problem)
        if problem is None:
            report.delivered += 1
            log.debug("delivered %s", event_id)
            continue
        report.problems.append(problem)
        log.debug("could not deliver %s: %s", event_id, problem)
        if down or time.monotonic() > deadline:
            break  # the receiver is down: the rest wait for the next round, in order


def _deliver_slack(
    engine: Engine,
    client: httpx.Client,
    url: str,
    batch: list[tuple[Any, ...]],
    report: DeliveryReport,
) -> None:
    events = [json.loads(body) for _, body, _ in batch]
    problem, _ = _post(client, url, slack_body(events), {"Content-Type": "application/json"})
    for row_id, _, attempts in batch:
        _mark(engine, [row_id], attempts, problem)
    if problem is None:
        report.delivered += len(batch)
    else:
        report.problems.append(problem)


def _post(
    client: httpx.Client, url: str, raw: bytes, headers: dict[str, str]
) -> tuple[str | None, bool]:
    """(problem or None, whether the receiver is unreachable). Never raises."""
    try:
        response = client.post(url, content=raw, headers=headers)
    except httpx.TimeoutException:
        return "timed out", True
    except httpx.ConnectError:
        return "connection refused or failed", True
    except httpx.HTTPError as e:
        return f"transport error ({type(e).__name__})", True
    if 200 <= response.status_code < 300:
        return None, False
    return f"HTTP {response.status_code}", False


def _mark(engine: Engine, ids: list[int], attempts: int, problem: str | None) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {"attempts": attempts + 1}
    if problem is None:
        values["delivered_at"] = now
        values["last_error"] = None
    else:
        values["next_attempt_at"] = now + backoff(attempts + 1)
        values["last_error"] = problem
    with Session(engine) as s, s.begin():
        s.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.delivered_at.is_(None))
            .values(**values)
        )
