"""Faults injected into a real `reconciler` process by the tests, never shipped.

``tests.db.spawn`` starts ``python -c BOOTSTRAP``, which calls ``install()`` before the CLI
runs. The hooks are SQLAlchemy events on every engine and session, and a wrapper around
``reconciler.db.locking.lock_organization`` (installed before the apply pipeline imports it).
Each is controlled by one environment variable:

- ``RECONCILER_TEST_KILL_POINT=POINT:N`` kills the process with SIGKILL (no cleanup, no commit,
  no rollback) the N-th time it reaches POINT;
- ``RECONCILER_TEST_BARRIER=POINT:DIR:N`` holds the process at the first arrival at POINT
  until N processes have arrived there (files in DIR), or 15 s have passed;
- ``RECONCILER_TEST_TRACE=FILE`` appends ``pid point wall-time`` for every arrival at
  ``locked``, ``commit`` and at each barrier.

Points: ``sql`` (just before any SQL statement), ``sql=TEXT`` (before a statement containing
TEXT, case-insensitive, e.g. ``sql=INSERT INTO integration_credentials``), ``commit`` (just
after a session's transaction committed; not a savepoint's release), ``locked`` (just after
an organization's lock was taken).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

KILL = "RECONCILER_TEST_KILL_POINT"
BARRIER = "RECONCILER_TEST_BARRIER"
TRACE = "RECONCILER_TEST_TRACE"
BARRIER_TIMEOUT = 15.0

BOOTSTRAP = (
    "import sys; from tests import faults; faults.install(); "
    "from reconciler.cli import main; sys.exit(main())"
)

_counts: Counter[str] = Counter()
_barrier_passed = False


def _matches(spec: str, point: str, statement: str | None) -> bool:
    if spec.startswith("sql="):
        return point == "sql" and statement is not None and spec[4:].lower() in statement.lower()
    return spec == point


def _trace(point: str) -> None:
    path = os.environ.get(TRACE)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {point} {time.time():.6f}\n")


def reached(point: str, statement: str | None = None) -> None:
    """One arrival at ``point``: trace it, wait at a barrier, or die, as the variables say."""
    if point != "sql":
        _trace(point)
    kill = os.environ.get(KILL)
    if kill:
        name, _, n = kill.rpartition(":")
        name, count = (name, int(n)) if name else (kill, 1)
        if _matches(name, point, statement):
            _counts[name] += 1
            if _counts[name] == count:
                os.kill(os.getpid(), signal.SIGKILL)
    barrier = os.environ.get(BARRIER)
    if barrier:
        _wait_at_barrier(barrier, point, statement)


def _wait_at_barrier(spec: str, point: str, statement: str | None) -> None:
    global _barrier_passed
    name, folder, n = spec.rsplit(":", 2)
    if _barrier_passed or not _matches(name, point, statement):
        return
    _barrier_passed = True
    _trace("barrier-arrived")
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(list(Path(folder).iterdir())) < int(n) and time.monotonic() < deadline:
        time.sleep(0.02)
    _trace("barrier-left")


def install() -> None:
    """Add the hooks (only those a variable asks for cost anything)."""
    if not any(os.environ.get(v) for v in (KILL, BARRIER, TRACE)):
        return
    from sqlalchemy import Engine, event
    from sqlalchemy.orm import Session

    from reconciler.db import locking

    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        reached("sql", statement)

    event.listen(Engine, "before_cursor_execute", before)

    def committed(session: Session) -> None:
        # a savepoint's release fires after_commit too (the organization lock's savepoint on
        # PostgreSQL): only the transaction's own COMMIT is the point
        if session.get_nested_transaction() is None:
            reached("commit")

    event.listen(Session, "after_commit", committed)
    locking.lock_organization = _after(locking.lock_organization, "locked")


def _after(fn: Callable[..., Any], point: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        reached(point)
        return result

    return wrapper
