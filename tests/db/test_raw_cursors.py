"""PostgreSQL statements reach psycopg with PostgreSQL's own ``$n`` placeholders, through its
raw cursors, which send them as they are: psycopg's other cursors rewrite each statement's
``%(name)s`` placeholders in Python, uncached for a batch's multi-row INSERTs (8 % of a first
apply's CPU samples went there). What a statement means must not change with it: a ``%`` in SQL, a
statement of many rows and parameters, a streamed read (``yield_per``, as audit verify reads)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, text

from reconciler.db.engine import dispose_all, make_engine

pytestmark = pytest.mark.databases("postgresql")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    yield make_engine(db_url)
    dispose_all()


def test_statements_are_sent_as_rendered(engine: Engine) -> None:
    import psycopg

    with engine.connect() as c:
        assert isinstance(c.connection.dbapi_connection.cursor(), psycopg.RawCursor)  # type: ignore[union-attr]
        assert engine.dialect.paramstyle == "numeric_dollar"
        # a % in SQL is a % (no placeholder syntax to escape), a bound value is bound
        found = c.execute(text("SELECT '50%' || :tail"), {"tail": " off"}).scalar_one()
        assert found == "50% off"


def test_many_rows_and_a_streamed_read(engine: Engine) -> None:
    table = Table(
        "raw_cursor_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String, nullable=False),
        Column("note", String),
    )
    table.create(engine)
    rows = [{"name": f"n{i}", "note": "100%" if i % 2 else None} for i in range(700)]
    with engine.begin() as c:  # one multi-row INSERT of 1,400 parameters, and RETURNING
        c.execute(insert(table), rows)
        ids = c.execute(insert(table).returning(table.c.id), rows[:60]).scalars().all()
    assert len(ids) == 60
    with engine.connect() as c:  # a server-side cursor, 100 rows at a time
        query = select(table.c.name, table.c.note).order_by(table.c.id)
        result = c.execution_options(yield_per=100).execute(query)
        streamed = [tuple(r) for r in result]
    assert len(streamed) == 760
    assert streamed[1] == ("n1", "100%") and streamed[700] == ("n0", None)
