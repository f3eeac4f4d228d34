"""Records (images, keypairs, security groups), networks, subnets, ports, servers with plans.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("kind", "id", name="uq_records_kind_id"),
    )
    op.create_index("ix_records_kind", "records", ["kind"])
    op.create_index("ix_records_name", "records", ["name"])
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("mtu", sa.Integer, nullable=False),
        sa.Column("network_type", sa.String(32), nullable=False),
        sa.Column("physical_network", sa.String(64), nullable=False),
        sa.Column("qos_policy_id", sa.String(36), sa.ForeignKey("qos_policies.id"), nullable=True),
        sa.Column("revision_number", sa.Integer, nullable=False),
    )
    op.create_index("ix_networks_name", "networks", ["name"])
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "network_id",
            sa.String(36),
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("ip_version", sa.Integer, nullable=False),
        sa.Column("gateway_ip", sa.String(64), nullable=True),
        sa.Column("pool_start", sa.String(64), nullable=False),
        sa.Column("pool_end", sa.String(64), nullable=False),
    )
    op.create_index("ix_subnets_network_id", "subnets", ["network_id"])
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("mac_address", sa.String(32), nullable=False, unique=True),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("device_owner", sa.String(255), nullable=False),
        sa.Column("binding_host_id", sa.String(255), nullable=False),
        sa.Column("qos_policy_id", sa.String(36), sa.ForeignKey("qos_policies.id"), nullable=True),
        sa.Column("security_groups", sa.Text, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
    )
    op.create_index("ix_ports_network_id", "ports", ["network_id"])
    op.create_index("ix_ports_device_id", "ports", ["device_id"])
    op.create_table(
        "port_ips",
        sa.Column(
            "port_id",
            sa.String(36),
            sa.ForeignKey("ports.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("subnet_id", sa.String(36), sa.ForeignKey("subnets.id"), primary_key=True),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.UniqueConstraint("subnet_id", "ip_address", name="uq_port_ips_subnet_ip"),
    )
    op.create_table(
        "servers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("flavor_id", sa.String(36), sa.ForeignKey("flavors.id"), nullable=False),
        sa.Column("image_id", sa.String(255), nullable=False),
        sa.Column("key_name", sa.String(255), nullable=True),
        sa.Column("availability_zone", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("admin_pass", sa.String(64), nullable=False),
        sa.Column("plan_json", sa.Text, nullable=False),
        sa.Column("plan_revision", sa.Integer, nullable=False),
        sa.Column("port_ids", sa.Text, nullable=False),
    )
    op.create_index("ix_servers_name", "servers", ["name"])


def downgrade() -> None:
    op.drop_table("servers")
    op.drop_table("port_ips")
    op.drop_index("ix_ports_device_id", "ports")
    op.drop_index("ix_ports_network_id", "ports")
    op.drop_table("ports")
    op.drop_index("ix_subnets_network_id", "subnets")
    op.drop_table("subnets")
    op.drop_index("ix_networks_name", "networks")
    op.drop_table("networks")
    op.drop_index("ix_records_name", "records")
    op.drop_index("ix_records_kind", "records")
    op.drop_table("records")
