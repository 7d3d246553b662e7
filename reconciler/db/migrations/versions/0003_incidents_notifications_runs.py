"""Incidents, the notification outbox and the last run of each command (SPEC section 10).

- ``integration_incidents``: one row per incident, open (``open_key`` set, unique) or resolved
  (kept as history).
- ``reconciler_notifications``: the outbox of ``incident.opened`` / ``incident.resolved``
  events, written with the health result that caused them and delivered after the commit.
- ``reconciler_runs``: when ``apply`` and ``health`` last finished, for ``reconciler metrics``.

Only new tables: no existing row is touched.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integration_incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(40), nullable=False, unique=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("failure_type", sa.String(32), nullable=False),
        sa.Column("open_key", sa.String(256), nullable=True, unique=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("healthy_streak", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_integration_incidents_organization", "integration_incidents", ["organization"]
    )
    op.create_table(
        "reconciler_notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_reconciler_notifications_delivered_at", "reconciler_notifications", ["delivered_at"]
    )
    op.create_table(
        "reconciler_runs",
        sa.Column("command", sa.String(32), primary_key=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("reconciler_runs", "reconciler_notifications", "integration_incidents"):
        op.drop_table(table)
