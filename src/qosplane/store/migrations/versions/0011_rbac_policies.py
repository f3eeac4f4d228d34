"""Neutron's RBAC entries for QoS policies (/v2.0/rbac-policies, object_type qos_policy):
a policy shared with one project, or with every project (`*`, which is what `shared`
means). Existing shared policies get their wildcard entry.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    entries = op.create_table(
        "rbac_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column(
            "object_id",
            sa.String(36),
            sa.ForeignKey("qos_policies.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_project", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.UniqueConstraint(
            "object_id", "action", "target_project", name="uq_rbac_policies_target"
        ),
    )
    shared = sa.table(
        "qos_policies",
        sa.column("id", sa.String),
        sa.column("project_id", sa.String),
        sa.column("shared", sa.Boolean),
    )
    rows = op.get_bind().execute(
        sa.select(shared.c.id, shared.c.project_id).where(shared.c.shared.is_(True))
    )
    op.bulk_insert(
        entries,
        [
            {
                "id": str(uuid.uuid4()),
                "object_type": "qos_policy",
                "object_id": policy_id,
                "action": "access_as_shared",
                "target_project": "*",
                "project_id": project_id,
            }
            for policy_id, project_id in rows
        ],
    )


def downgrade() -> None:
    op.drop_table("rbac_policies")
