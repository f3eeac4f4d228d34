"""Flavors with extra specs; Neutron QoS policies with tags and rules.

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


def upgrade() -> None:
    op.create_table(
        "flavors",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("ram_mb", sa.Integer, nullable=False),
        sa.Column("disk_gb", sa.Integer, nullable=False),
        sa.Column("ephemeral_gb", sa.Integer, nullable=False),
        sa.Column("swap_mb", sa.Integer, nullable=False),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flavors"),
        sa.UniqueConstraint("name", name="uq_flavors_name"),
    )
    op.create_table(
        "flavor_extra_specs",
        sa.Column("flavor_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["flavor_id"],
            ["flavors.id"],
            ondelete="CASCADE",
            name="fk_flavor_extra_specs_flavor_id_flavors",
        ),
        sa.PrimaryKeyConstraint("flavor_id", "key", name="pk_flavor_extra_specs"),
    )
    op.create_table(
        "qos_policies",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_qos_policies"),
    )
    op.create_index("ix_qos_policies_project_id", "qos_policies", ["project_id"])
    op.create_table(
        "qos_policy_tags",
        sa.Column("policy_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["qos_policies.id"],
            ondelete="CASCADE",
            name="fk_qos_policy_tags_policy_id_qos_policies",
        ),
        sa.PrimaryKeyConstraint("policy_id", "tag", name="pk_qos_policy_tags"),
    )
    op.create_table(
        "qos_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("policy_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("rule_type", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("max_rate_bits_per_s", sa.BigInteger, nullable=True),
        sa.Column("max_burst_bits", sa.BigInteger, nullable=True),
        sa.Column("min_rate_bits_per_s", sa.BigInteger, nullable=True),
        sa.Column("max_rate_packets_per_s", sa.BigInteger, nullable=True),
        sa.Column("max_burst_packets", sa.BigInteger, nullable=True),
        sa.Column("min_rate_packets_per_s", sa.BigInteger, nullable=True),
        sa.Column("dscp_mark", sa.Integer, nullable=True),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["qos_policies.id"],
            ondelete="CASCADE",
            name="fk_qos_rules_policy_id_qos_policies",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_qos_rules"),
        sa.UniqueConstraint(
            "policy_id", "rule_type", "direction", name="uq_qos_rules_type_direction"
        ),
    )
    op.create_index("ix_qos_rules_policy_id", "qos_rules", ["policy_id"])


def downgrade() -> None:
    op.drop_table("qos_rules")
    op.drop_table("qos_policy_tags")
    op.drop_index("ix_qos_policies_project_id", "qos_policies")
    op.drop_table("qos_policies")
    op.drop_table("flavor_extra_specs")
    op.drop_table("flavors")
