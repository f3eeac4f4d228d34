"""Ports created on their own (`openstack port create`) and then given to a server are
kept when the server is deleted, unbound, as Nova does for ports it did not create
(preserve_on_delete).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.add_column(
            sa.Column("preserve_on_delete", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("preserve_on_delete")
