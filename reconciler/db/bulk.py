"""Inserting many rows through SQLAlchemy Core: one ``executemany`` per set of columns, no ORM
bookkeeping per row (apply writes an organization's new rows this way)."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from reconciler.db.schema import Base


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements."""
    return cast(Table, model.__table__)


def insert_rows(s: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with one executemany per set of columns (rows naming the same columns
    share a statement; a column a row leaves out keeps its default)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        by_columns.setdefault(tuple(sorted(r)), []).append(r)
    for group in by_columns.values():
        s.execute(_insert(table), group)


@cache
def _insert(table: Table) -> Insert:
    """One statement object per table: SQLAlchemy computes its cache key once, not per call."""
    return insert(table)
