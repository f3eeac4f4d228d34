"""Keystone keeps the attributes of a user or project it does not know in `extra` and
returns them, and a project's tags (keystone/identity/backends/sql_model.py,
keystone/resource/backends/sql_model.py).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("extra_json", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("extra_json", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("tags_json", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("tags_json")
        batch.drop_column("extra_json")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("extra_json")
