"""Opening the database: URL from the environment, engine options, schema on first use."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from reconciler.core.errors import ConfigError
from reconciler.db.errors import translate
from reconciler.db.schema_version import check_schema, upgrade_schema

DEFAULT_URL = "sqlite:///reconciler.db"
# a pooled server connection idle this long is pinged before use (it may have been dropped: a
# restart, a proxy's idle timeout); one used since is not, which spares an apply a round trip
# per transaction (SQLAlchemy's pool_pre_ping pings every checkout)
PING_AFTER_IDLE_S = 1.0


def database_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("RECONCILER_DATABASE_URL") or DEFAULT_URL


def _normalize(url: str) -> str:
    # psycopg 3 is our PostgreSQL driver; plain postgresql:// URLs would pick psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def database_exists(url: str) -> bool:
    """Whether a SQLite file exists (other databases are assumed to exist)."""
    path = sqlite_path(_normalize(url))
    return path is None or path.exists()


_ENGINES: dict[str, Engine] = {}


def make_engine(url: str) -> Engine:
    """An engine that never shows bound parameters in errors or logs (they may be ciphertexts).

    One engine per URL per command; ``dispose_all`` closes their connections when it ends.
    """
    if url not in _ENGINES:
        _ENGINES[url] = _new_engine(url)
    return _ENGINES[url]


_ON_DISPOSE: list[Callable[[], None]] = []  # e.g. dropping lock-holder announcements


def on_dispose(fn: Callable[[], None]) -> None:
    _ON_DISPOSE.append(fn)


def dispose_all() -> None:
    for fn in _ON_DISPOSE:
        fn()
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.dispose()


def _new_engine(url: str) -> Engine:
    try:
        norm = _normalize(url)
        u = make_url(norm)
    except Exception as e:  # sqlalchemy.exc.ArgumentError; the URL may carry a password
        raise ConfigError(
            "RECONCILER_DATABASE_URL is not a valid SQLAlchemy URL "
            "(e.g. sqlite:///reconciler.db or postgresql://user@host/db)"
        ) from e
    if u.get_backend_name() == "sqlite":
        engine = create_engine(
            norm, hide_parameters=True, connect_args={"timeout": 30}, future=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            record.info["wal"] = _write_ahead_log(cur)
            cur.execute("PRAGMA busy_timeout=30000")
            record.info["busy_ms"] = 30000  # sqlite_lock sets it again only when it changes
            cur.close()

    else:
        # statements go to psycopg with PostgreSQL's own $n placeholders, through its raw
        # cursors, which send them as they are: its other cursors rewrite every statement's
        # %(name)s placeholders in Python, and cache that only for statements under 4 KB and
        # 50 parameters, so never for a batch's multi-row INSERTs (bench/RESULTS.md: bulk
        # inserts' client CPU four times lower; a first apply's about 5 % lower)
        engine = create_engine(norm, hide_parameters=True, future=True, paramstyle="numeric_dollar")
        event.listen(engine, "connect", _raw_cursors)
        _ping_when_idle(engine)
        # an executemany INSERT (an organization's credentials, health rows, resources, audit
        # entries) as one multi-row INSERT per table, not one execution per row in psycopg's
        # pipeline: less CPU here and at the server (Dialect.use_insertmanyvalues_wo_returning)
        engine.dialect.use_insertmanyvalues_wo_returning = True
    event.listen(engine, "handle_error", translate)
    return engine


def _raw_cursors(dbapi_conn: Any, record: Any) -> None:
    import psycopg  # connected already: imported

    dbapi_conn.cursor_factory = psycopg.RawCursor
    dbapi_conn.server_cursor_factory = psycopg.RawServerCursor  # yield_per (audit verify)


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping`` for a connection that sat in the pool ``PING_AFTER_IDLE_S`` or more:
    a dead one is replaced by a new one (the pool retries on ``DisconnectionError``)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as e:
            raise DisconnectionError(str(e)) from None


def _write_ahead_log(cur: Any) -> bool:
    """The write-ahead log (WAL), synced at checkpoints: a commit then writes the log and
    does not wait for the disk, readers never wait for a writer (an apply's reads overlap
    another organization's write) and a killed process loses nothing it committed (a power
    loss may lose the last commits; the transactions that must survive one, the pending
    creates before a provider call, ask for a full sync: ``lock_organization(durable=True)``).
    A database file keeps the mode; turning it on needs a moment without other connections,
    so a database another process is using stays in its mode until a later command. True
    when the database is in WAL mode."""
    cur.execute("PRAGMA busy_timeout=200")
    try:
        mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.OperationalError:  # another connection holds the database: next time
        return False
    if str(mode).lower() != "wal":  # in memory
        return False
    cur.execute("PRAGMA synchronous=NORMAL")
    return True


def has_schema(engine: Engine) -> bool:
    """Whether the database has the schema; raises ConfigError (naming the command to run) when
    it has one of another revision, so every command that looks refuses to run on it."""
    return check_schema(engine)


def ensure_schema(engine: Engine) -> tuple[str | None, str]:
    """Create the schema on first use, or migrate it to this tool's revision keeping every row
    (``reconciler db upgrade``). Returns the revisions before and after."""
    return upgrade_schema(engine)
