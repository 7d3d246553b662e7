"""The audit log becomes append-only in the database (PostgreSQL); lock holders (SQLite).

- PostgreSQL: a trigger refuses UPDATE and DELETE of ``integration_audit_log`` rows and a
  statement trigger refuses TRUNCATE, so even a writer with table privileges cannot rewrite
  history quietly (``audit verify`` still catches whoever disables the triggers first).
- ``reconciler_locks``: who holds SQLite's write lock, for the message of an apply that gave up
  waiting (``reconciler.db.locking``). Informational only; never waited on.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION reconciler_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'integration_audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'audit entries are never changed or removed; see reconciler audit verify';
END
$$
"""
_ROW_TRIGGER = """
CREATE TRIGGER integration_audit_log_append_only
BEFORE UPDATE OR DELETE ON integration_audit_log
FOR EACH ROW EXECUTE FUNCTION reconciler_audit_log_append_only()
"""
_DROP = "DROP TRIGGER IF EXISTS {} ON integration_audit_log"
_TRUNCATE_TRIGGER = """
CREATE TRIGGER integration_audit_log_no_truncate
BEFORE TRUNCATE ON integration_audit_log
FOR EACH STATEMENT EXECUTE FUNCTION reconciler_audit_log_append_only()
"""


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("reconciler_locks"):  # a create_all'ed database has it
        op.create_table(
            "reconciler_locks",
            sa.Column("token", sa.String(32), primary_key=True),
            sa.Column("organization", sa.String(128), nullable=False),
            sa.Column("holder", sa.String(256), nullable=False),
            sa.Column("host", sa.String(256), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        )
    if bind.dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(_DROP.format("integration_audit_log_append_only"))
        op.execute(_DROP.format("integration_audit_log_no_truncate"))
        op.execute(_ROW_TRIGGER)
        op.execute(_TRUNCATE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP.format("integration_audit_log_no_truncate"))
        op.execute(_DROP.format("integration_audit_log_append_only"))
        op.execute("DROP FUNCTION IF EXISTS reconciler_audit_log_append_only()")
    op.drop_table("reconciler_locks")
