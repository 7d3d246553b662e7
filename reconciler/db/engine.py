"""Opening the database: URL from the environment, engine options, schema on first use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reconciler.core.errors import ConfigError
from reconciler.db.schema import Base, StateMeta

DEFAULT_URL = "sqlite:///reconciler.db"


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


def dispose_all() -> None:
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
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(norm, hide_parameters=True, pool_pre_ping=True, future=True)


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("integration_instances")


def ensure_schema(engine: Engine) -> None:
    """Create the schema and the state row on first use (idempotent)."""
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        if s.scalar(select(StateMeta).where(StateMeta.id == 1)) is None:
            s.add(StateMeta(id=1, lineage=str(uuid.uuid4()), serial=0))
