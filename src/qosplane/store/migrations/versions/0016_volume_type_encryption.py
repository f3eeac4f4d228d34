"""A volume type's encryption specs (cinder/db/sqlalchemy/models.py Encryption): the
provider, cipher, key size and where encryption happens, one row per type.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volume_type_encryption",
        sa.Column(
            "volume_type_id",
            sa.String(36),
            sa.ForeignKey("volume_types.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("encryption_id", sa.String(36), nullable=False, unique=True),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("cipher", sa.String(255), nullable=True),
        sa.Column("key_size_bits", sa.Integer(), nullable=True),
        sa.Column("control_location", sa.String(255), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("volume_type_encryption")
