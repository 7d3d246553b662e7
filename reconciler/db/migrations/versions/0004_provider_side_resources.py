"""Provider-side resources (SPEC section 8): what a resource row remembers of its object at the
provider.

- ``remote_id``: the provider's id of the object (``we_…``, a Postmark webhook's ``ID``,
  ``WH…``); NULL when the resource is not realized at the provider, or a create was started and
  its answer never recorded.
- ``remote_generation``: how many creates were made for the resource (0 for the first); goes
  into a create's Idempotency-Key, with ``remote_replaces`` (the id of the object a re-create
  replaces), so a re-create after a deletion at the provider is a new request.
- ``remote_adopted``: the object was made outside the reconciler and adopted (``adopt: true``).
- ``reconciler_pending_creates``: a create without an idempotency key (Postmark, Quo) about to
  be sent, committed before it is; the apply that records the answer deletes the row. One left
  behind (a crash between the provider's answer and the commit) makes the next plan take the
  object of that identity at the provider as ours instead of a conflict (no duplicate).

Signing secrets are ``integration_credentials`` rows of the connection (no new column).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "integration_resources"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("remote_id", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("remote_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("remote_replaces", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("remote_adopted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "reconciler_pending_creates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(512), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("replaces", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "organization", "provider", "kind", "identity", name="uq_pending_create"
        ),
    )


def downgrade() -> None:
    op.drop_table("reconciler_pending_creates")
    with op.batch_alter_table(TABLE) as batch:
        for name in (
            "remote_adopted",
            "remote_replaces",
            "remote_generation",
            "remote_id",
        ):
            batch.drop_column(name)
