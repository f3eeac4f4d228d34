"""Hosts (registered agents with their facts, heartbeat and desired-state revision),
Nova host aggregates with their availability zone, the agent's report per server, and
the projects a private flavor is shared with.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("number", sa.Integer, nullable=False, unique=True),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("registered_at", sa.String(32), nullable=False),
        sa.Column("heartbeat_at", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("applied_revision", sa.Integer, nullable=False),
    )
    op.create_table(
        "aggregates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "aggregate_hosts",
        sa.Column(
            "aggregate_id",
            sa.Integer,
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "host",
            sa.String(255),
            sa.ForeignKey("hosts.name", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "flavor_access",
        sa.Column(
            "flavor_id",
            sa.String(36),
            sa.ForeignKey("flavors.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("project_id", sa.String(64), primary_key=True),
    )
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("agent_report", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("agent_report")
    op.drop_table("flavor_access")
    op.drop_table("aggregate_hosts")
    op.drop_table("aggregates")
    op.drop_table("hosts")
