"""A pooled PostgreSQL connection is pinged before use only after it sat idle
(``PING_AFTER_IDLE_S``): a connection the server dropped meanwhile is replaced without an
error, and one just used costs no round trip (SQLAlchemy's ``pool_pre_ping`` pinged every
checkout: a round trip per transaction of an apply)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from reconciler.db import engine as engine_module
from reconciler.db.engine import dispose_all, make_engine

pytestmark = pytest.mark.databases("postgresql")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    yield make_engine(db_url)
    dispose_all()


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    real = engine.dialect.do_ping

    def counted(dbapi_conn: object) -> bool:
        seen.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return seen


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_dropped_while_idle_is_replaced(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _backend_pid(engine)
    admin = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as c:  # the server (a restart, a proxy's timeout) drops it
        assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)
    pings = _pings(engine, monkeypatch)

    assert _backend_pid(engine) != pid  # no error: a new connection
    assert len(pings) == 1


def test_a_connection_just_used_is_not_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backend_pid(engine)
    pings = _pings(engine, monkeypatch)
    for _ in range(5):
        _backend_pid(engine)
    assert pings == []
