"""reconciler notify, and what every writing command does after its own work: record when it
finished (for ``reconciler metrics``) and deliver the notifications that are due.

A receiver that is down never fails a command: delivery problems become one line on stderr,
and the events stay in the outbox for the next command or ``reconciler notify``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.core.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for ``delivers``: it imports no database code
    from sqlalchemy import Engine

    from reconciler.incidents import DeliveryReport, NotifySettings

log = logging.getLogger("reconciler.notify")

RECORDED_RUNS = ("apply", "health")
F = TypeVar("F", bound=Callable[..., Any])


def delivers(command: str) -> Callable[[F], F]:
    """After a command's own work, whatever its exit code: record that it ran and deliver the
    notifications that are due. Bad notification settings are refused before the command
    starts; a receiver that is down never fails it."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_settings(os.environ)
            code = 1
            try:
                result = fn(*args, **kwargs)
                code = result if isinstance(result, int) else 0
                return result
            finally:
                for line in after_command(command, code, os.environ):
                    click.echo(line, err=True)

        return wrapper  # type: ignore[return-value]

    return decorate


def check_settings(environ: Mapping[str, str]) -> NotifySettings:
    """The notification settings, or a ConfigError before the command does anything."""
    from reconciler.incidents import NotifySettings

    return NotifySettings.from_environ(environ)


def _engine(environ: Mapping[str, str]) -> Engine | None:
    """The database, if it exists with this tool's schema; None otherwise (nothing to do)."""
    from reconciler.db.engine import database_exists, database_url, has_schema, make_engine

    url = database_url(environ)
    if not database_exists(url):
        return None
    engine = make_engine(url)
    try:
        return engine if has_schema(engine) else None
    except ConfigError:
        return None


BOOKKEEPING_LOCK_WAIT_S = 2


def _wait_briefly(engine: Engine) -> None:
    """Bound how long the bookkeeping after a command waits for a lock: a command that failed
    because another process holds the database (SQLite's one writer, an apply of the same
    organization) must not then wait the driver's default 30 s just to record that it ran."""

    from sqlalchemy import event

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute(f"PRAGMA busy_timeout = {BOOKKEEPING_LOCK_WAIT_S * 1000}")
            record.info["busy_ms"] = BOOKKEEPING_LOCK_WAIT_S * 1000
        elif engine.dialect.name == "postgresql":
            cursor.execute(f"SET lock_timeout = '{BOOKKEEPING_LOCK_WAIT_S}s'")
        cursor.close()

    if not event.contains(engine, "checkout", on_checkout):
        event.listen(engine, "checkout", on_checkout)


def after_command(command: str, exit_code: int, environ: Mapping[str, str]) -> list[str]:
    """Record the run and deliver due notifications; the lines to print on stderr. Never
    raises: the command's own outcome stands whatever happens here."""
    from sqlalchemy.orm import Session

    from reconciler.incidents import NotifySettings, deliver, resolve_unchecked

    try:
        engine = _engine(environ)
        if engine is None:
            return []
        _wait_briefly(engine)
        settings = NotifySettings.from_environ(environ)
        if command in RECORDED_RUNS:
            record_run(engine, command, exit_code)
            with Session(engine) as s, s.begin():
                resolve_unchecked(s, settings)
        report = deliver(engine, settings)
    except Exception as e:  # the command's work is done and committed; say so and move on
        # the type only: a message could quote RECONCILER_NOTIFY_URL, itself a secret
        log.debug("after %s: %s", command, type(e).__name__)
        return [
            f"Warning: notifications were not delivered ({type(e).__name__}); "
            "run `reconciler notify` later."
        ]
    return delivery_notes(report)


def record_run(engine: Engine, command: str, exit_code: int) -> None:
    """Overwrite the command's row; two commands finishing at once both succeed (the one that
    inserts second updates instead)."""
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from reconciler.db.schema import Run

    now = datetime.now(UTC)
    change = update(Run).where(Run.command == command).values(finished_at=now, exit_code=exit_code)
    with Session(engine) as s, s.begin():
        if s.execute(change).rowcount:  # type: ignore[attr-defined]
            return
        try:
            with s.begin_nested():
                s.add(Run(command=command, finished_at=now, exit_code=exit_code))
        except IntegrityError:
            s.execute(change)


def delivery_notes(report: DeliveryReport) -> list[str]:
    """What a command says about delivery: only problems (a delivered event is silent)."""
    if report.not_sent and report.pending:
        return [
            f"Warning: {report.pending} notification(s) pending and not sent: {report.not_sent}."
        ]
    if report.problems:
        return [
            f"Warning: {len(report.problems)} notification(s) could not be delivered "
            f"({report.problems[0]}); {report.pending} kept in the outbox, retried by the next "
            "command or `reconciler notify`."
        ]
    return []


def notify(environ: Mapping[str, str]) -> tuple[str, int]:
    """Deliver every pending notification now (ignoring the backoff); the summary and the exit
    code: 1 if any is still undelivered."""
    from reconciler.db.engine import database_exists, database_url, has_schema, make_engine
    from reconciler.incidents import NotifySettings, deliver

    settings = NotifySettings.from_environ(environ)
    url = database_url(environ)
    if not database_exists(url):
        return "No database yet; no notifications pending.", 0
    engine = make_engine(url)
    if not has_schema(engine):  # (an older or newer schema raises, naming what to do)
        return "No notifications pending.", 0
    report = deliver(engine, settings, due_only=False)
    record_run(engine, "notify", 0 if not report.pending else 1)
    if not report.pending and not report.delivered:
        return "No notifications pending.", 0
    lines = [f"Delivered {report.delivered} notification(s)."] if report.delivered else []
    if report.pending:
        reason = report.not_sent or (report.problems[0] if report.problems else "not attempted")
        lines.append(f"{report.pending} still pending: {reason}.")
    return "\n".join(lines), 1 if report.pending else 0
