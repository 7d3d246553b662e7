"""SQLite's side of the organization locks (``reconciler.db.locking``).

A write transaction takes the database's own write lock at once (BEGIN IMMEDIATE), waited for
up to the timeout; the operating system releases it when a process dies.

The write lock cannot outlive a COMMIT, and an apply that creates at a provider what the
provider cannot replay must commit a "pending create" before the call (a crash after the
answer then leaves a trace). So an organization held across several transactions is held by
locks that are not SQLite's, on the file ``DATABASE-lock`` next to the database (the "gate"):

- an organization writer holds a shared ``flock`` on the whole file and an exclusive
  open-file-description lock (``F_OFD_SETLK``) on one byte of it, the organization's, so
  writers of different organizations pass side by side (their provider calls overlap; their
  write transactions still take SQLite's lock one at a time), and two writers of one
  organization never do;
- ``health`` and ``keys rotate`` take the ``flock`` exclusively: they wait until no
  organization is held, and keep every writer out until they hold the write lock.

The holder keeps its locks from its first read of the state to its last commit, provider calls
included; a writer of a single transaction keeps them only until it holds the write lock. The
kernel drops both kinds with the process, so a killed apply never leaves the gate closed.
Where open-file-description locks do not exist (not Linux), an organization writer takes the
``flock`` exclusively: one organization at a time, as before. (A second connection cannot
commit the pending rows instead: SQLite has one writer at a time, and the lock holder's own
write transaction would make it wait until its busy timeout ran out.)

SQLite cannot say who holds either lock, so each apply commits a row in ``reconciler_locks``
before it waits, and deletes it at the end of the command. The rows are information only:
nothing waits on them, and a row whose process has died is ignored and cleaned up by the next
apply.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reconciler.core.errors import LockError
from reconciler.db.errors import untranslated
from reconciler.db.schema import LockHolder

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the write lock alone, as before the gate
    fcntl = None  # type: ignore[assignment]

SQLITE_BUSY_TIMEOUT_MS = 30000  # engine.py's default, restored once the lock is held
BUSY_SLACK_MS = 50  # a busy timeout this close to the one wanted is left as it is
GATE_POLL_S = 0.02  # how often a waiter tries the gate again
# a holder row from another host cannot be checked for liveness: forget it after this long
FOREIGN_ROW_TTL = timedelta(hours=12)

_ANNOUNCED: dict[int, tuple[Engine, str]] = {}  # id(engine) -> (engine, our holder row)
_ANNOUNCING = threading.Lock()  # writer threads of one process announce it once
_HELD = threading.local()  # .gates: {id(engine): (organization, fd)} held by this thread


def when(ts: datetime | None) -> str:
    if ts is None:
        return "an unknown time"
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _timeout_words(timeout: float) -> str:
    return f"waited {timeout:g} s (--lock-timeout)"


# -- the gate --------------------------------------------------------------------------------


def gate_path(engine: Engine) -> Path | None:
    """``DATABASE-lock`` next to a database file; None for an in-memory database (one process)
    or where ``flock`` does not exist."""
    db = engine.url.database
    if fcntl is None or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(f"{db}-lock")


def _gates() -> dict[int, tuple[str, int]]:
    if not hasattr(_HELD, "gates"):
        _HELD.gates = {}
    gates: dict[int, tuple[str, int]] = _HELD.gates
    return gates


def apart(engine: Engine) -> bool:
    """Whether organizations of this database are held apart (one byte of the gate each), so
    several may be written at once; False for an in-memory database or without
    open-file-description locks (one organization at a time)."""
    return gate_path(engine) is not None and _OFD is not None


_OFD = getattr(fcntl, "F_OFD_SETLK", None) if fcntl is not None else None


def _org_byte(organization: str) -> int:
    """The organization's byte of the gate (past byte 0; a 56-bit hash, so two organizations
    share one with negligible chance, and then only wait for each other)."""
    return 1 + int.from_bytes(hashlib.sha256(organization.encode("utf-8")).digest()[:7], "big")


def _try_org_lock(fd: int, organization: str) -> bool:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding
    spec = struct.pack("hhqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, _org_byte(organization), 1, 0)
    assert _OFD is not None
    try:
        fcntl.fcntl(fd, _OFD, spec)
    except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: another holds it
        return False
    return True


def _open_gate(engine: Engine, deadline: float, organization: str | None = None) -> int | None:
    """The gate, closed behind us (a file descriptor to close to open it again), or None when
    there is none; raises TimeoutError when another process kept it until ``deadline``. With
    ``organization``, closed for that organization only (where organizations are held apart);
    without, for every writer."""
    path = gate_path(engine)
    if path is None:
        return None
    apart_ = organization is not None and _OFD is not None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if apart_ else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _wait(deadline)
        if apart_:
            assert organization is not None
            while not _try_org_lock(fd, organization):
                _wait(deadline)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _wait(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise TimeoutError
    time.sleep(GATE_POLL_S)


def _close_gate(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # the flock goes with the last descriptor of its open file


@contextmanager
def hold_sqlite(engine: Engine, organization: str, timeout: float, holder: str) -> Iterator[None]:
    """Keep ``organization`` from every other writer until the block ends, across the
    transactions inside it (each still takes the write lock, ``lock_sqlite``)."""
    deadline = time.monotonic() + timeout
    token = _announced(engine, organization, timeout, holder)
    try:
        fd = _open_gate(engine, deadline, organization)
    except TimeoutError:
        _ANNOUNCED.pop(id(engine), None)
        raise lock_error(engine, organization, timeout, token) from None
    _gates()[id(engine)] = (organization, fd if fd is not None else -1)
    try:
        yield
    finally:
        del _gates()[id(engine)]
        _close_gate(fd)


# -- the write lock --------------------------------------------------------------------------


def lock_sqlite(
    session: Session, organization: str, timeout: float, holder: str, *, durable: bool = False
) -> None:
    """Take the write lock for this organization's transaction: through the gate, unless this
    thread holds the organization already. ``durable``: its commit waits for the disk (in
    WAL mode a commit otherwise survives a killed process, not a power loss)."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    deadline = time.monotonic() + timeout
    token = _announced(engine, organization, timeout, holder)
    fd = None
    if id(engine) not in _gates():  # a thread holding the organization passed the gate
        try:
            fd = _open_gate(engine, deadline, organization)
        except TimeoutError:
            _ANNOUNCED.pop(id(engine), None)
            raise lock_error(engine, organization, timeout, token) from None
    try:
        _write_lock(session, deadline, durable=durable)
    except OperationalError:
        _ANNOUNCED.pop(id(engine), None)
        raise lock_error(engine, organization, timeout, token) from None
    finally:
        _close_gate(fd)


def pass_gate(session: Session, timeout: float) -> bool:
    """Take the write lock through the gate (``health``, ``keys rotate``: they never hold an
    organization across transactions, but must not write into another's). False on timeout."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    deadline = time.monotonic() + timeout
    try:
        fd = _open_gate(engine, deadline)
    except TimeoutError:
        return False
    try:
        _write_lock(session, deadline)
    except OperationalError:
        return False
    finally:
        _close_gate(fd)
    return True


def _busy_timeout(conn: Connection, ms: int) -> None:
    """SQLite's busy timeout, sent only when it moves by more than ``BUSY_SLACK_MS`` from what
    the pooled connection has (``info["busy_ms"]``, set where it is connected): with the
    default lock timeout, the timeout before the write lock and the usual one after it are
    the same 30 s, two statements in every write transaction for nothing."""
    info = conn.connection.info
    if abs(info.get("busy_ms", -BUSY_SLACK_MS - 1) - ms) > BUSY_SLACK_MS:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {ms}")
        info["busy_ms"] = ms


def _write_lock(session: Session, deadline: float, *, durable: bool = False) -> None:
    conn = session.connection()
    remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
    _busy_timeout(conn, remaining_ms)
    info = conn.connection.info
    in_transaction = conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
    sync = "FULL" if durable else "NORMAL"
    # WAL mode syncs at checkpoints; a durable commit syncs itself (set only when it changes)
    if info.get("wal") and info.get("sync", "NORMAL") != sync and not in_transaction:
        conn.exec_driver_sql(f"PRAGMA synchronous = {sync}")
        info["sync"] = sync
    try:
        with untranslated():
            _take_write_lock(conn)
    finally:
        # COMMIT may have to wait for readers to finish: give it the usual patience
        _busy_timeout(conn, SQLITE_BUSY_TIMEOUT_MS)


def _take_write_lock(conn: Connection) -> None:
    """BEGIN IMMEDIATE: waits (busy timeout) for the write lock before reading anything, so
    SQLite's deadlock avoidance never turns the wait into an immediate "database is locked"."""
    if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        # the caller already read in this transaction: take the lock with an empty write
        conn.exec_driver_sql("UPDATE reconciler_state SET serial = serial WHERE id = 1")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# -- who holds it ----------------------------------------------------------------------------


def _announced(engine: Engine, organization: str, timeout: float, holder: str) -> str:
    """Announce this process once (a committed holder row, so a waiting apply can name us).
    One announcement per process, not per organization: each costs a commit, and the row
    names the process (its writer threads may hold several organizations at once)."""
    with _ANNOUNCING:
        known = _ANNOUNCED.get(id(engine))
        if known is not None:
            return known[1]
        token = uuid.uuid4().hex
        if not _announce(engine, token, organization, holder, timeout):
            raise lock_error(engine, organization, timeout, token)
        _ANNOUNCED[id(engine)] = (engine, token)
        return token


def release_announcements() -> None:
    """Remove this process's holder rows (at the end of a command)."""
    while _ANNOUNCED:
        _, (engine, token) = _ANNOUNCED.popitem()
        _forget(engine, token)


@contextmanager
def _short_transaction(engine: Engine, busy_ms: int) -> Iterator[Connection]:
    """A transaction on its own connection that waits at most ``busy_ms`` for the write lock."""
    with engine.connect() as conn:
        _busy_timeout(conn, max(busy_ms, 1))
        try:
            _take_write_lock(conn)
            yield conn
            conn.commit()
        finally:
            conn.rollback()
            _busy_timeout(conn, SQLITE_BUSY_TIMEOUT_MS)


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


def lock_error(engine: Engine, organization: str, timeout: float, token: str) -> LockError:
    _forget(engine, token)
    who = holder_of(engine, token)
    return LockError(
        f"organization {organization!r} is locked: another apply holds the SQLite database's "
        f"lock ({who}); {_timeout_words(timeout)}. Nothing was written for it; try "
        "again when that apply has finished."
    )


def holder_of(engine: Engine, own_token: str) -> str:
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
            return f"held by {name} (pid {pid} on {host}), applying since {when(since)}"
    return "holder unknown: not an apply, or it has just finished"
