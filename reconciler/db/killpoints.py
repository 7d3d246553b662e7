"""A test hook: SIGKILL this process at a chosen point, to prove apply is crash safe.

``RECONCILER_TEST_KILL_POINT=POINT:N`` kills the process (SIGKILL: no cleanup, no commit, no
rollback) the N-th time it reaches POINT. Points:

- ``sql``: just before any SQL statement is sent;
- ``sql=TEXT``: just before a statement containing TEXT (case-insensitive), e.g.
  ``sql=INSERT INTO integration_credentials:1`` (a connection row written, its credential not);
- ``commit``: just after a session's transaction committed (e.g. between organizations);
- ``locked``: just after an organization's lock was taken;
- any name passed to ``reached`` elsewhere.

Unset (always, outside tests), every function here returns at once and no listener is added.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

ENV = "RECONCILER_TEST_KILL_POINT"
_counts: Counter[str] = Counter()
_session_hook_installed = False


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, n = spec.rpartition(":")
    if not name:
        return spec, 1
    return name, int(n)


def reached(point: str, statement: str | None = None) -> None:
    """Count one arrival at ``point``; die if it is the chosen arrival."""
    target = _target()
    if target is None:
        return
    name, n = target
    if name.startswith("sql="):
        if point != "sql" or statement is None or name[4:].lower() not in statement.lower():
            return
    elif name != point:
        return
    _counts[name] += 1
    if _counts[name] == n:
        os.kill(os.getpid(), signal.SIGKILL)


def install(engine: Engine) -> None:
    """Add the ``sql`` and ``commit`` points, only when the hook is set."""
    global _session_hook_installed
    if _target() is None:
        return

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        reached("sql", statement)

    if not _session_hook_installed:
        _session_hook_installed = True
        event.listen(Session, "after_commit", lambda _session: reached("commit"))
