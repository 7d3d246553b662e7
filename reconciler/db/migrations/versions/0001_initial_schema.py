"""The first released schema: the six tables the SaaS reads, and the state row's table.

Frozen: later changes go into later revisions, never here. A database made by
``metadata.create_all`` before migrations existed is exactly this revision, and
``reconciler db upgrade`` stamps it as such.

The tool's own columns have server defaults, so a row the SaaS writes with only the columns it
knows is valid and reads as not ours (``managed_by`` ``ui``): never torn down or overwritten.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "integration_instances",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("managed_by", sa.String(32), nullable=False, server_default="ui"),
        *_stamps(),
        sa.UniqueConstraint("organization", "provider", name="uq_instance_org_provider"),
    )
    op.create_index(
        "ix_integration_instances_organization", "integration_instances", ["organization"]
    )
    op.create_table(
        "integration_connections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "instance_id",
            sa.Integer(),
            sa.ForeignKey("integration_instances.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("managed_by", sa.String(32), nullable=False, server_default="ui"),
        sa.Column("deletion_policy", sa.String(16), nullable=False, server_default="delete"),
        sa.Column("prevent_destroy", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("identity", sa.Text(), nullable=False, server_default="{}"),
        *_stamps(),
        sa.UniqueConstraint("instance_id", "user_email", name="uq_connection_user"),
    )
    op.create_index(
        "ix_integration_connections_instance_id", "integration_connections", ["instance_id"]
    )
    op.create_table(
        "integration_credentials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("integration_connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False, server_default=""),
        sa.Column("fingerprint_key_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.UniqueConstraint("connection_id", "field", name="uq_credential_field"),
    )
    op.create_index(
        "ix_integration_credentials_connection_id", "integration_credentials", ["connection_id"]
    )
    op.create_table(
        "integration_resources",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "instance_id",
            sa.Integer(),
            sa.ForeignKey("integration_instances.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(512), nullable=False, server_default=""),
        sa.Column("spec", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("managed_by", sa.String(32), nullable=False, server_default="ui"),
        *_stamps(),
        sa.UniqueConstraint("instance_id", "kind", "identity", name="uq_resource_identity"),
    )
    op.create_index(
        "ix_integration_resources_instance_id", "integration_resources", ["instance_id"]
    )
    op.create_table(
        "integration_health",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "instance_id",
            sa.Integer(),
            sa.ForeignKey("integration_instances.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "connection_id",
            sa.Integer(),
            sa.ForeignKey("integration_connections.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_type", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("response_ms", sa.Integer(), nullable=False),
        sa.Column("provider_code", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column(
            "checked_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
    )
    op.create_index("ix_integration_health_instance_id", "integration_health", ["instance_id"])
    op.create_index("ix_integration_health_connection_id", "integration_health", ["connection_id"])
    op.create_table(
        "integration_audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.Integer(), nullable=False, unique=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("hmac", sa.String(128), nullable=False),
    )
    op.create_index(
        "ix_integration_audit_log_organization", "integration_audit_log", ["organization"]
    )
    op.create_table(
        "reconciler_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lineage", sa.String(64), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(128), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "reconciler_state",
        "integration_audit_log",
        "integration_health",
        "integration_resources",
        "integration_credentials",
        "integration_connections",
        "integration_instances",
    ):
        op.drop_table(table)
