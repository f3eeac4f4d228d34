"""Keystone's domains, project tree and groups.

A domain is a project row with `is_domain` true, whose own domain is Keystone's root
sentinel, as Keystone stores it (keystone/resource/backends/sql_model.py, NULL_DOMAIN_ID in
keystone/resource/backends/base.py). Project and user names become unique within their
domain, not globally (the `(domain_id, name)` constraints of those models). Groups, their
members, and role grants to groups on a project, a domain or the system
(keystone/identity/backends/sql_model.py, keystone/assignment/backends/sql.py).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ROOT = "<<keystone.domain.root>>"


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("domain_id", sa.String(64), nullable=False, server_default="default")
        )
        batch.add_column(sa.Column("parent_id", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("is_domain", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.drop_constraint("uq_projects_name", type_="unique")
        batch.create_unique_constraint("uq_projects_domain_name", ["domain_id", "name"])
    projects = sa.table(
        "projects",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("enabled", sa.Boolean),
        sa.column("domain_id", sa.String),
        sa.column("parent_id", sa.String),
        sa.column("is_domain", sa.Boolean),
        sa.column("extra_json", sa.Text),
        sa.column("tags_json", sa.Text),
    )
    # Every project so far lived in the one domain; it becomes their parent.
    op.execute(projects.update().values(parent_id="default"))
    op.bulk_insert(
        projects,
        [
            {
                "id": "default",
                "name": "Default",
                "description": "The default domain",
                "enabled": True,
                "domain_id": ROOT,
                "parent_id": None,
                "is_domain": True,
                "extra_json": "{}",
                "tags_json": "[]",
            }
        ],
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("domain_id", sa.String(64), nullable=False, server_default="default")
        )
        batch.drop_constraint("uq_users_name", type_="unique")
        batch.create_unique_constraint("uq_users_domain_name", ["domain_id", "name"])
    op.create_table(
        "groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "domain_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("extra_json", sa.Text(), nullable=False, server_default="{}"),
        sa.UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.String(64),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(64),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "group_role_assignments",
        sa.Column(
            "group_id",
            sa.String(64),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "target_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "role",
            sa.String(64),
            sa.ForeignKey("roles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )

    op.create_table(
        "system_group_role_assignments",
        sa.Column(
            "group_id",
            sa.String(64),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "role",
            sa.String(64),
            sa.ForeignKey("roles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )


def downgrade() -> None:
    """Back to one domain: what lives in any other cannot be kept (its names may clash)."""
    op.drop_table("system_group_role_assignments")
    op.drop_table("group_role_assignments")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.execute(sa.text("DELETE FROM users WHERE domain_id <> 'default'"))
    op.execute(sa.text("DELETE FROM projects WHERE NOT is_domain AND domain_id <> 'default'"))
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_domain_name", type_="unique")
        batch.create_unique_constraint("uq_users_name", ["name"])
        batch.drop_column("domain_id")
    op.execute(
        sa.text(
            "DELETE FROM role_assignments WHERE project_id IN "
            "(SELECT id FROM projects WHERE is_domain)"
        )
    )
    op.execute(sa.text("DELETE FROM projects WHERE is_domain"))
    with op.batch_alter_table("projects") as batch:
        batch.drop_constraint("uq_projects_domain_name", type_="unique")
        batch.create_unique_constraint("uq_projects_name", ["name"])
        batch.drop_column("is_domain")
        batch.drop_column("parent_id")
        batch.drop_column("domain_id")
