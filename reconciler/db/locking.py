"""Per-organization locks, held for the length of one write transaction.

PostgreSQL: a transaction-level advisory lock keyed by (a constant namespace, a hash of the
organization). It is released by COMMIT or ROLLBACK, or when the connection dies, so a crashed
process never leaves a lock behind, and it is safe behind a transaction-pooling pooler (no
session state outlives the transaction). Applies of different organizations do not contend.

SQLite: the database's own write lock (``BEGIN IMMEDIATE``), waited for up to the timeout.
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reconciler.core.errors import LockError

NAMESPACE = 0x5EC0  # the first key of our advisory locks: "reconciler"


def organization_key(organization: str) -> int:
    """A stable signed 32-bit hash of the organization (the second advisory-lock key)."""
    h = zlib.crc32(organization.encode("utf-8"))
    return h - (1 << 32) if h >= (1 << 31) else h


def lock_organization(session: Session, organization: str, *, timeout: float, holder: str) -> None:
    """Take the organization's lock in the session's current transaction, or raise LockError."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        _lock_postgresql(session, organization, timeout, holder)
    elif bind.dialect.name == "sqlite":
        _lock_sqlite(session, organization, timeout)


def _lock_postgresql(session: Session, organization: str, timeout: float, holder: str) -> None:
    session.execute(
        text("SELECT set_config('application_name', :name, true)"),
        {"name": f"reconciler: {holder}"[:63]},
    )
    session.execute(
        text("SELECT set_config('lock_timeout', :t, true)"),
        {"t": f"{max(int(timeout * 1000), 1)}ms"},
    )
    key = organization_key(organization)
    try:
        with session.begin_nested():
            session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": NAMESPACE, "key": key}
            )
    except OperationalError:
        who = _postgresql_holder(session, key)
        raise LockError(
            f"organization {organization!r} is locked by another apply ({who}); waited "
            f"{timeout:g} s (--lock-timeout). Try again when it has finished."
        ) from None
    session.execute(text("SELECT set_config('lock_timeout', '0', true)"))


def _postgresql_holder(session: Session, key: int) -> str:
    row = session.execute(
        text(
            "SELECT a.application_name, a.pid, a.xact_start, a.client_addr "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid) LIMIT 1"
        ),
        {"ns": NAMESPACE, "key": key & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown; it may just have finished"
    name, pid, since, addr = row
    when = since.isoformat(timespec="seconds") if since else "unknown time"
    return f"held by {name or 'unknown'} (pid {pid}{f', {addr}' if addr else ''}) since {when}"


def _lock_sqlite(session: Session, organization: str, timeout: float) -> None:
    conn = session.connection()
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(int(timeout * 1000), 1)}")
    try:
        # an empty write takes SQLite's write lock now rather than at the first real write
        conn.exec_driver_sql("UPDATE reconciler_state SET serial = serial WHERE id = 1")
    except OperationalError:
        raise LockError(
            f"organization {organization!r} is locked: another apply holds the SQLite database's "
            f"write lock; waited {timeout:g} s (--lock-timeout). Try again when it has finished."
        ) from None
