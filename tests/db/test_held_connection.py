"""The connection that holds an organization's lock across its transactions (PostgreSQL,
``hold_organization``) is where apply reads the rows its provider calls are worked out from
(``read_session``), and its upsert writes on them without reading them again: that read must
see what is committed when it runs, after the lock was granted."""

from __future__ import annotations

import pytest

from reconciler.db.engine import dispose_all, make_engine
from reconciler.db.locking import held_connection, hold_organization

pytestmark = pytest.mark.databases("postgresql")


def test_the_connection_holding_an_organization_reads_committed_rows(db_url: str) -> None:
    """The rows apply's provider calls are worked out from are read on the connection that
    holds the organization's lock (``read_session``): each read sees what is committed
    when it runs, even where the server's default isolation is REPEATABLE READ (whose
    snapshot would date from before the lock was granted)."""
    url = db_url + "?options=-c%20default_transaction_isolation%3Drepeatable%5C%20read"
    engine = make_engine(url)
    try:
        with engine.connect() as plain:
            assert plain.exec_driver_sql("SHOW transaction_isolation").scalar() == (
                "repeatable read"
            )
        with hold_organization(engine, "acme", timeout=5, holder="test"):
            held = held_connection(engine, "acme")
            assert held is not None
            isolation = held.exec_driver_sql("SHOW transaction_isolation").scalar()
        assert isolation == "read committed"
    finally:
        dispose_all()
