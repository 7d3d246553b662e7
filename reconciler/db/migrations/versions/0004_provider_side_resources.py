"""Provider-side resources (SPEC section 8): what a resource row remembers of its object at the
provider.

- ``remote_id``: the provider's id of the object (``we_…``, a Postmark webhook's ``ID``,
  ``WH…``); NULL when the resource is not realized at the provider, or a create was started and
  its answer never recorded.
- ``remote_generation``: how many creates were made for the resource (0 for the first); goes
  into a create's Idempotency-Key, with ``remote_replaces`` (the id of the object a re-create
  replaces), so a re-create after a deletion at the provider is a new request.
- ``remote_adopted``: the object was made outside the reconciler and adopted (``adopt: true``).
- ``remote_pending``: a create without an idempotency key (Postmark, Quo) was about to be sent
  when this row was committed; the next plan looks for the object by its identity.

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
        batch.add_column(
            sa.Column("remote_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        for name in (
            "remote_pending",
            "remote_adopted",
            "remote_replaces",
            "remote_generation",
            "remote_id",
        ):
            batch.drop_column(name)
