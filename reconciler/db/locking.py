"""Per-organization locks, held for the length of one write transaction.

PostgreSQL: a transaction-level advisory lock keyed by (a constant namespace, a hash of the
organization). COMMIT or ROLLBACK releases it, and so does the server when the connection
dies, so a crashed process never leaves a lock behind; no session state outlives the
transaction, so it is safe behind a transaction-pooling pooler (PgBouncer). Applies of
different organizations do not contend: each also takes a shared lock on the whole state,
which only ``keys rotate`` takes exclusively (it rewrites every organization's credentials).
Who holds a lock is read from ``pg_locks`` and ``pg_stat_activity`` (the holder names itself
in a transaction-local ``application_name``).

SQLite: the database's own write lock, taken at once (an empty UPDATE) and waited for up to the
timeout; the operating system releases it when a process dies. SQLite cannot say who holds
it, so each apply commits a row in ``reconciler_locks`` just before taking it, and deletes the
row inside the locked transaction, so the row disappears together with the lock. The rows are
information only: nothing waits on them, and a row whose process has died is ignored and
cleaned up by the next apply.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reconciler.core.errors import LockError
from reconciler.db.engine import on_dispose
from reconciler.db.errors import untranslated
from reconciler.db.schema import LockHolder

NAMESPACE = 0x5EC0  # the first key of our advisory locks: "reconciler"
STATE_LOCK = (0x5EC1, 2)  # shared by every organization's write, exclusive for a key rotation
SQLITE_BUSY_TIMEOUT_MS = 30000  # engine.py's default, restored once the lock is held
# a holder row from another host cannot be checked for liveness: forget it after this long
FOREIGN_ROW_TTL = timedelta(hours=12)


def organization_key(organization: str) -> int:
    """A stable signed 32-bit hash of the organization (the second advisory-lock key)."""
    h = zlib.crc32(organization.encode("utf-8"))
    return h - (1 << 32) if h >= (1 << 31) else h


def lock_organization(session: Session, organization: str, *, timeout: float, holder: str) -> None:
    """Take the organization's lock in the session's current transaction, or raise LockError
    naming the organization, who holds it and since when. Call it before the transaction
    reads anything."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        _lock_postgresql(session, organization, timeout, holder)
    elif bind.dialect.name == "sqlite":
        _lock_sqlite(session, organization, timeout, holder)


def lock_organizations(
    session: Session, organizations: Iterable[str], *, timeout: float, holder: str
) -> None:
    """Take several organizations' locks in one transaction, in name order (so two callers
    never wait for each other in a cycle). PostgreSQL only: on SQLite the first write takes
    the database's write lock, which serializes the writers already."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for organization in sorted(set(organizations)):
        lock_organization(session, organization, timeout=timeout, holder=holder)


def lock_all_organizations(session: Session, *, timeout: float, holder: str) -> None:
    """Wait until no organization is being written, and keep every write out until the
    transaction ends (a key rotation). SQLite's write lock, taken by the first write, already
    does this."""
    if session.get_bind().dialect.name != "postgresql":
        return
    _set_lock_timeout(session, timeout, holder)
    try:
        with untranslated(), session.begin_nested():
            session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                {"ns": STATE_LOCK[0], "key": STATE_LOCK[1]},
            )
    except OperationalError:
        raise LockError(
            f"an apply is writing; waited {timeout:g} s. Nothing was changed; try again "
            "when it has finished."
        ) from None
    session.execute(text("SELECT set_config('lock_timeout', '0', true)"))


def _timeout_words(timeout: float) -> str:
    return f"waited {timeout:g} s (--lock-timeout)"


# -- PostgreSQL ------------------------------------------------------------------------------


def _set_lock_timeout(session: Session, timeout: float, holder: str) -> None:
    session.execute(
        text("SELECT set_config('application_name', :name, true)"),
        {"name": f"reconciler: {holder}"[:63]},
    )
    session.execute(
        text("SELECT set_config('lock_timeout', :t, true)"),
        {"t": f"{max(int(timeout * 1000), 1)}ms"},
    )


def _lock_postgresql(session: Session, organization: str, timeout: float, holder: str) -> None:
    _set_lock_timeout(session, timeout, holder)
    key = organization_key(organization)
    try:
        with untranslated(), session.begin_nested():
            session.execute(
                text("SELECT pg_advisory_xact_lock_shared(:ns, :key)"),
                {"ns": STATE_LOCK[0], "key": STATE_LOCK[1]},
            )
            session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": NAMESPACE, "key": key}
            )
    except OperationalError:
        who = _postgresql_holder(session, key)
        raise LockError(
            f"organization {organization!r} is locked by another apply ({who}); "
            f"{_timeout_words(timeout)}. Nothing was written for it; try again when that "
            "apply has finished."
        ) from None
    session.execute(text("SELECT set_config('lock_timeout', '0', true)"))


def _postgresql_holder(session: Session, key: int) -> str:
    row = session.execute(
        text(
            "SELECT a.application_name, a.pid, a.xact_start, a.client_addr, a.client_hostname "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid) "
            "AND l.objsubid = 2 LIMIT 1"
        ),
        {"ns": NAMESPACE, "key": key & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown: it may just have finished"
    name, pid, since, addr, host = row
    name = (name or "").removeprefix("reconciler: ") or "an unnamed client"
    where = host or (str(addr) if addr else "")
    origin = f", from {where}" if where else ""
    return f"held by {name} (server pid {pid}{origin}) since {_when(since)}"


def _when(ts: datetime | None) -> str:
    if ts is None:
        return "an unknown time"
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- SQLite ----------------------------------------------------------------------------------


_ANNOUNCED: dict[int, tuple[Engine, str]] = {}  # id(engine) -> (engine, our holder row)


def _lock_sqlite(session: Session, organization: str, timeout: float, holder: str) -> None:
    """Announce this process once (a committed holder row, so a waiting apply can name us),
    then take the write lock for this organization's transaction. One announcement per
    process, not per organization: each costs a commit, and a process holds one lock at a
    time anyway."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    deadline = time.monotonic() + timeout
    known = _ANNOUNCED.get(id(engine))
    token = known[1] if known is not None else uuid.uuid4().hex
    if known is None:
        if not _announce(engine, token, organization, holder, timeout):
            raise _sqlite_lock_error(engine, organization, timeout, token)
        _ANNOUNCED[id(engine)] = (engine, token)
    conn = session.connection()
    remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {remaining_ms}")
    try:
        with untranslated():
            _take_write_lock(conn)
    except OperationalError:
        _ANNOUNCED.pop(id(engine), None)
        raise _sqlite_lock_error(engine, organization, timeout, token) from None
    finally:
        # COMMIT may have to wait for readers to finish: give it the usual patience
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def release_announcements() -> None:
    """Remove this process's holder rows (at the end of a command)."""
    while _ANNOUNCED:
        _, (engine, token) = _ANNOUNCED.popitem()
        _forget(engine, token)


def _take_write_lock(conn: Connection) -> None:
    """BEGIN IMMEDIATE: waits (busy timeout) for the write lock before reading anything, so
    SQLite's deadlock avoidance never turns the wait into an immediate "database is locked"."""
    if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        # the caller already read in this transaction: take the lock with an empty write
        conn.exec_driver_sql("UPDATE reconciler_state SET serial = serial WHERE id = 1")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def _short_transaction(engine: Engine, busy_ms: int) -> Iterator[Connection]:
    """A transaction on its own connection that waits at most ``busy_ms`` for the write lock."""
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(busy_ms, 1)}")
        try:
            _take_write_lock(conn)
            yield conn
            conn.commit()
        finally:
            conn.rollback()
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def _announce(engine: Engine, token: str, organization: str, holder: str, timeout: float) -> bool:
    """Commit our holder row (and drop rows of dead processes); False if the database stayed
    write-locked for the whole timeout."""
    host, pid = socket.gethostname(), os.getpid()
    try:
        with untranslated(), _short_transaction(engine, int(timeout * 1000)) as conn:
            rows = conn.execute(
                select(LockHolder.token, LockHolder.host, LockHolder.pid, LockHolder.since)
            ).all()
            # our own rows are earlier announcements: a process takes one lock at a time
            stale = [
                t for t, h, p, since in rows if (h, p) == (host, pid) or not _alive(h, p, since)
            ]
            if stale:
                conn.execute(delete(LockHolder).where(LockHolder.token.in_(stale)))
            conn.execute(
                insert(LockHolder).values(
                    token=token,
                    organization=organization,
                    holder=holder[:256],
                    host=host[:256],
                    pid=pid,
                    since=datetime.now(UTC),
                )
            )
    except OperationalError:
        return False
    return True


def _forget(engine: Engine, token: str) -> None:
    """Remove our holder row after a rollback. Best effort and brief (never wait for another
    apply's lock): a row left behind is harmless, and our next announcement removes it."""
    try:
        with untranslated(), _short_transaction(engine, 200) as conn:
            conn.execute(delete(LockHolder).where(LockHolder.token == token))
    except OperationalError:
        pass


def _alive(host: str, pid: int, since: datetime) -> bool:
    """Whether the process that wrote a holder row may still run."""
    if host != socket.gethostname():
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        return datetime.now(UTC) - since < FOREIGN_ROW_TTL
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sqlite_lock_error(engine: Engine, organization: str, timeout: float, token: str) -> LockError:
    _forget(engine, token)
    who = _sqlite_holder(engine, token)
    return LockError(
        f"organization {organization!r} is locked: another apply holds the SQLite database's "
        f"write lock ({who}); {_timeout_words(timeout)}. Nothing was written for it; try "
        "again when that apply has finished."
    )


def _sqlite_holder(engine: Engine, own_token: str) -> str:
    """The longest-waiting live announcer is the holder (others announce only while the
    database is not write-locked, so at most a moment's worth of waiters stand beside it)."""
    try:
        with untranslated(), engine.connect() as conn:
            rows = conn.execute(
                select(
                    LockHolder.token,
                    LockHolder.organization,
                    LockHolder.holder,
                    LockHolder.host,
                    LockHolder.pid,
                    LockHolder.since,
                ).order_by(LockHolder.since)
            ).all()
    except OperationalError:
        rows = []
    for token, _org, name, host, pid, since in rows:
        if token != own_token and _alive(host, pid, since):
            return f"held by {name} (pid {pid} on {host}), applying since {_when(since)}"
    return "holder unknown: not an apply, or it has just finished"


on_dispose(release_announcements)
