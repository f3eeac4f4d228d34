"""Cinder: QoS specs, volume types, volumes with their attachment.

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
        "qos_specs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("consumer", sa.String(16), nullable=False),
        sa.Column("specs", sa.Text, nullable=False),
    )
    op.create_table(
        "volume_types",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.String(255), nullable=True),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.Column("qos_specs_id", sa.String(36), sa.ForeignKey("qos_specs.id"), nullable=True),
    )
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("size_gb", sa.Integer, nullable=False),
        sa.Column("volume_type_id", sa.String(36), sa.ForeignKey("volume_types.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("server_id", sa.String(36), sa.ForeignKey("servers.id"), nullable=True),
        sa.Column("attachment_id", sa.String(36), nullable=True),
        sa.Column("attached_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_volumes_name", "volumes", ["name"])
    op.create_index("ix_volumes_server_id", "volumes", ["server_id"])


def downgrade() -> None:
    op.drop_index("ix_volumes_server_id", "volumes")
    op.drop_index("ix_volumes_name", "volumes")
    op.drop_table("volumes")
    op.drop_table("volume_types")
    op.drop_table("qos_specs")
