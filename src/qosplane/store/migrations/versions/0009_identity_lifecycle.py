"""Keystone's life cycle: tokens that end (revoked one by one, or all of a user's at once on
disable, password change or delete), roles as rows (the four defaults and an operator's
own) with implied roles as data, and the user and project fields Keystone keeps.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# keystone/cmd/bootstrap.py: admin implies manager implies member implies reader.
DEFAULT_ROLES = ("admin", "manager", "member", "reader")
DEFAULT_IMPLIED = (("admin", "manager"), ("manager", "member"), ("member", "reader"))


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("description", sa.String(255), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("email", sa.String(255), nullable=True))
        batch.add_column(sa.Column("tokens_revoked_before_unix_s", sa.Float(), nullable=True))
    roles = op.create_table(
        "roles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=True),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.UniqueConstraint("name", "domain_id", name="uq_roles_name"),
    )
    implied = op.create_table(
        "implied_roles",
        sa.Column(
            "prior_role_id",
            sa.String(64),
            sa.ForeignKey("roles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "implied_role_id",
            sa.String(64),
            sa.ForeignKey("roles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.bulk_insert(
        roles, [{"id": r, "name": r, "domain_id": None, "description": ""} for r in DEFAULT_ROLES]
    )
    op.bulk_insert(
        implied, [{"prior_role_id": p, "implied_role_id": i} for p, i in DEFAULT_IMPLIED]
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("audit_id", sa.String(64), primary_key=True),
        sa.Column("expires_at_unix_s", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revoked_tokens")
    op.drop_table("implied_roles")
    op.drop_table("roles")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tokens_revoked_before_unix_s")
        batch.drop_column("email")
        batch.drop_column("description")
