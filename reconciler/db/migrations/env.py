"""Alembic environment: migrate over the connection the tool hands over (no alembic.ini).

``reconciler.db.schema_version`` opens the connection, takes the schema lock and begins the
transaction; this file only runs the revisions inside it.
"""

from __future__ import annotations

from alembic import context

from reconciler.db.schema import Base
from reconciler.db.schema_version import VERSION_TABLE


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the migrations with `reconciler db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
