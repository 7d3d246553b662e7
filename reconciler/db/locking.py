"""Per-organization locks: held for one write transaction (``lock_organization``), or across
several (``hold_organization``: an apply that commits pending creates before calling a
provider, or writes its teardown after its upserts), so an organization's lock is held from
the first read of its state to its last write, provider calls included (SPEC section 8).

PostgreSQL: a transaction-level advisory lock keyed by (a constant namespace, a hash of the
organization). COMMIT or ROLLBACK releases it, and so does the server when the connection
dies, so a crashed process never leaves a lock behind; no session state outlives the
transaction, so it is safe behind a transaction-pooling pooler (PgBouncer). Applies of
different organizations do not contend: each also takes a shared lock on the whole state,
which only ``keys rotate`` takes exclusively (it rewrites every organization's credentials).
Who holds a lock is read from ``pg_locks`` and ``pg_stat_activity`` (the holder names itself
in a transaction-local ``application_name``). ``hold_organization`` takes the same locks in a
transaction of its own connection, left open until the block ends; the transactions inside
the block, on other connections, then take none (they would wait for themselves).

SQLite: the database's write lock, and for a hold locks on a file beside it (a byte per
organization, so organizations are held apart there too); see ``reconciler.db.sqlite_lock``.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reconciler.core.errors import LockError
from reconciler.db.engine import on_dispose
from reconciler.db.errors import untranslated
from reconciler.db.schema import AuditEntry
from reconciler.db.sqlite_lock import (
    apart,
    hold_sqlite,
    lock_error,
    lock_sqlite,
    pass_gate,
    release_announcements,
    when,
)

NAMESPACE = 0x5EC0  # the first key of our advisory locks: "reconciler"
STATE_LOCK = (0x5EC1, 2)  # shared by every organization's write, exclusive for a key rotation
# .orgs: {id(engine): (organization, the connection holding its lock)} held by this thread
# (PostgreSQL)
_HELD = threading.local()


def organization_key(organization: str) -> int:
    """A stable signed 32-bit hash of the organization (the second advisory-lock key)."""
    h = zlib.crc32(organization.encode("utf-8"))
    return h - (1 << 32) if h >= (1 << 31) else h


def lock_organization(
    session: Session, organization: str, *, timeout: float, holder: str, durable: bool = False
) -> None:
    """Take the organization's lock in the session's current transaction, or raise LockError
    naming the organization, who holds it and since when. Call it before the transaction
    reads anything. Inside ``hold_organization`` of the same organization it only takes what
    the transaction itself needs (SQLite's write lock). ``durable``: the commit must survive
    a power loss, not only a killed process (SQLite's WAL mode: a full sync for this one)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        if held_connection(bind.engine, organization) is None:
            _lock_postgresql(session, organization, timeout, holder)
    elif bind.dialect.name == "sqlite":
        lock_sqlite(session, organization, timeout, holder, durable=durable)


def organizations_apart(engine: Engine) -> bool:
    """Whether two organizations can be held at once, each by its own lock (PostgreSQL; an
    SQLite file where the gate holds organizations apart), so their provider calls overlap."""
    if engine.dialect.name == "postgresql":
        return True
    return engine.dialect.name == "sqlite" and apart(engine)


@contextmanager
def hold_organization(
    engine: Engine, organization: str, *, timeout: float, holder: str
) -> Iterator[None]:
    """Hold the organization's lock until the block ends, across the transactions inside it
    (each still calls ``lock_organization``); LockError as ``lock_organization`` raises it.
    One organization per thread at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # whatever the server's default: each read made here (``read_session``) sees what
            # is committed when it runs, after the lock, not a snapshot from before it
            conn.execution_options(isolation_level="READ COMMITTED")
            _lock_postgresql(conn, organization, timeout, holder)
            _held_orgs()[id(engine)] = (organization, conn)
            try:
                yield
            finally:
                del _held_orgs()[id(engine)]
                conn.rollback()  # releases the locks
    elif engine.dialect.name == "sqlite":
        with hold_sqlite(engine, organization, timeout, holder):
            yield
    else:
        yield


def _held_orgs() -> dict[int, tuple[str, Connection]]:
    if not hasattr(_HELD, "orgs"):
        _HELD.orgs = {}
    orgs: dict[int, tuple[str, Connection]] = _HELD.orgs
    return orgs


def held_connection(engine: Engine, organization: str) -> Connection | None:
    """The connection of this thread's ``hold_organization`` of the organization (PostgreSQL),
    in its open transaction: a read made there sees what is committed (READ COMMITTED), and
    costs no transaction of its own. None when not held that way."""
    org, conn = _held_orgs().get(id(engine), (None, None))
    return conn if org == organization else None


def read_session(engine: Engine, organization: str) -> Session:
    """A session for reading the organization's rows: on the connection of this thread's
    ``hold_organization`` of it (PostgreSQL; the session leaves its transaction as it is),
    else in a transaction of its own, which ends in a rollback."""
    held = held_connection(engine, organization)
    return Session(
        held if held is not None else engine,
        autoflush=False,
        join_transaction_mode="rollback_only",
    )


def lock_organizations(
    session: Session, organizations: Iterable[str], *, timeout: float, holder: str
) -> None:
    """Take several organizations' locks in one transaction, in name order (so two callers
    never wait for each other in a cycle). On SQLite, the database's write lock, taken once
    no apply holds an organization across transactions."""
    orgs = sorted(set(organizations))
    if session.get_bind().dialect.name == "sqlite":
        if orgs and not pass_gate(session, timeout):
            raise _sqlite_busy(session, ", ".join(orgs), timeout)
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    for organization in orgs:
        lock_organization(session, organization, timeout=timeout, holder=holder)


def lock_all_organizations(session: Session, *, timeout: float, holder: str) -> None:
    """Wait until no organization is being written, and keep every write out until the
    transaction ends (a key rotation). On SQLite, the database's write lock, taken once no
    apply holds an organization across transactions."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite" and not pass_gate(session, timeout):
        raise LockError(
            f"an apply is writing; waited {timeout:g} s. Nothing was changed; try again "
            "when it has finished."
        )
    if dialect != "postgresql":
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


def _sqlite_busy(session: Session, organizations: str, timeout: float) -> LockError:
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return lock_error(engine, organizations, timeout, "")


def _timeout_words(timeout: float) -> str:
    return f"waited {timeout:g} s (--lock-timeout)"


# -- PostgreSQL ------------------------------------------------------------------------------


# One round trip: the holder's name and the lock timeout for this transaction, the shared
# state lock, the organization's lock, and the timeout reset for the rest of the transaction
# (PostgreSQL evaluates a select list in order). A timeout aborts the transaction, so the
# holder is named from another connection. Four round trips before (a savepoint kept the
# transaction usable): 3,000 of a first apply's 8,000 statements on 1,000 organizations.
_NAME_AND_TIMEOUT = text(
    "SELECT set_config('application_name', :name, true), set_config('lock_timeout', :t, true)"
)
_LOCK_ORGANIZATION = text(
    "SELECT set_config('application_name', :name, true), set_config('lock_timeout', :t, true), "
    "pg_advisory_xact_lock_shared(:sns, :skey), pg_advisory_xact_lock(:ns, :key), "
    "set_config('lock_timeout', '0', true)"
)


def _set_lock_timeout(session: Session | Connection, timeout: float, holder: str) -> None:
    session.execute(_NAME_AND_TIMEOUT, _name_and_timeout(timeout, holder))


def _name_and_timeout(timeout: float, holder: str) -> dict[str, str]:
    return {"name": f"reconciler: {holder}"[:63], "t": f"{max(int(timeout * 1000), 1)}ms"}


def _lock_postgresql(
    session: Session | Connection, organization: str, timeout: float, holder: str
) -> None:
    key = organization_key(organization)
    try:
        with untranslated():
            session.execute(
                _LOCK_ORGANIZATION,
                {
                    **_name_and_timeout(timeout, holder),
                    "sns": STATE_LOCK[0],
                    "skey": STATE_LOCK[1],
                    "ns": NAMESPACE,
                    "key": key,
                },
            )
    except OperationalError:
        bind = session.get_bind() if isinstance(session, Session) else session
        with bind.engine.connect() as other:
            who = _postgresql_holder(other, key)
        raise LockError(
            f"organization {organization!r} is locked by another apply ({who}); "
            f"{_timeout_words(timeout)}. Nothing was written for it; try again when that "
            "apply has finished."
        ) from None


def _postgresql_holder(session: Session | Connection, key: int) -> str:
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
    return f"held by {name} (server pid {pid}{origin}) since {when(since)}"


on_dispose(release_announcements)


def last_writer(s: Session, organization: str) -> str:
    """Who last wrote the organization, from its audit log: the holder of the lock this apply
    waited for (the lock is held from reading the state to the last write, provider calls
    included, so two applies never both call the provider)."""
    entry = s.scalar(
        select(AuditEntry)
        .where(AuditEntry.organization == organization)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )
    if entry is None:
        return "another apply?"
    when = entry.created_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"written by {entry.actor} ({entry.method}) at {when}, holding its lock"
