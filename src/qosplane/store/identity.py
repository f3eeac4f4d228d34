"""Keystone's data: projects, users with salted PBKDF2-SHA256 password hashes, role
assignments (admin, member, reader; admin implies member implies reader)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, InvalidInput, NotFound, Unauthorized
from qosplane.store.database import fetch
from qosplane.store.tables import ProjectRow, RoleAssignmentRow, UserRow

# Keystone's default roles and their implications (keystone/cmd/bootstrap.py: admin
# implies manager implies member implies reader, since 2024.2).
ROLES = ("admin", "manager", "member", "reader")
IMPLIED = {
    "admin": ("admin", "manager", "member", "reader"),
    "manager": ("manager", "member", "reader"),
    "member": ("member", "reader"),
    "reader": ("reader",),
}
PBKDF2_ROUNDS = 200_000


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), PBKDF2_ROUNDS)
    return f"pbkdf2_sha256${PBKDF2_ROUNDS}${salt}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, rounds, salt, digest = stored.split("$")
        computed = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), bytes.fromhex(salt), int(rounds)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


class IdentityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create_project(
        self, name: str, description: str = "", project_id: str | None = None
    ) -> ProjectRow:
        if self.session.scalar(select(ProjectRow.id).where(ProjectRow.name == name)):
            raise Conflict(
                "name", f"Conflict occurred attempting to store project - Duplicate entry {name}."
            )
        row = ProjectRow(
            id=project_id or uuid.uuid4().hex, name=name, description=description, enabled=True
        )
        self.session.add(row)
        self.session.flush()
        return row

    def project(self, ref: str) -> ProjectRow:
        return fetch(self.session, ProjectRow, ref, "Project")

    def projects(self, name: str | None = None) -> list[ProjectRow]:
        query = select(ProjectRow).order_by(ProjectRow.name)
        if name is not None:
            query = query.where(ProjectRow.name == name)
        return list(self.session.scalars(query))

    def create_user(
        self,
        name: str,
        password: str,
        default_project_id: str | None = None,
        user_id: str | None = None,
    ) -> UserRow:
        if not password:
            raise InvalidInput("user.password", "", "a non-empty password")
        if self.session.scalar(select(UserRow.id).where(UserRow.name == name)):
            raise Conflict(
                "name", f"Conflict occurred attempting to store user - Duplicate entry {name}."
            )
        if default_project_id is not None:
            self.project(default_project_id)
        row = UserRow(
            id=user_id or uuid.uuid4().hex,
            name=name,
            password_hash=hash_password(password),
            default_project_id=default_project_id,
            enabled=True,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def user(self, ref: str) -> UserRow:
        return fetch(self.session, UserRow, ref, "User")

    def users(self, name: str | None = None) -> list[UserRow]:
        query = select(UserRow).order_by(UserRow.name)
        if name is not None:
            query = query.where(UserRow.name == name)
        return list(self.session.scalars(query))

    def grant(self, user_id: str, project_id: str, role: str) -> None:
        if role not in ROLES:
            raise NotFound("Role", role)
        self.user(user_id)
        self.project(project_id)
        if self.session.get(RoleAssignmentRow, (user_id, project_id, role)) is None:
            self.session.add(RoleAssignmentRow(user_id=user_id, project_id=project_id, role=role))
            self.session.flush()

    def assignments(self) -> list[RoleAssignmentRow]:
        return list(
            self.session.scalars(
                select(RoleAssignmentRow).order_by(
                    RoleAssignmentRow.project_id, RoleAssignmentRow.user_id, RoleAssignmentRow.role
                )
            )
        )

    def roles_of(self, user_id: str, project_id: str) -> tuple[str, ...]:
        direct = self.session.scalars(
            select(RoleAssignmentRow.role).where(
                RoleAssignmentRow.user_id == user_id, RoleAssignmentRow.project_id == project_id
            )
        )
        effective = {implied for role in direct for implied in IMPLIED[role]}
        return tuple(r for r in ROLES if r in effective)

    def authenticate(
        self,
        user_id: str | None,
        user_name: str | None,
        password: str,
        project_name: str | None,
        project_id: str | None,
    ) -> tuple[UserRow, ProjectRow, tuple[str, ...]]:
        """The user (by id, else by name), its project and roles; one answer (401) for
        every failure, so a caller learns nothing about which part was wrong."""
        denied = Unauthorized("The request you have made requires authentication.")
        if user_id is not None:
            user = self.session.get(UserRow, user_id)
        else:
            user = next(iter(self.users(user_name)), None) if user_name else None
        if user is None or not user.enabled or not check_password(password, user.password_hash):
            raise denied
        if project_id:
            project = self.session.get(ProjectRow, project_id)
        elif project_name:
            project = next(iter(self.projects(project_name)), None)
        else:
            project = self.session.get(ProjectRow, user.default_project_id or "")
        if project is None:
            raise denied
        roles = self.roles_of(user.id, project.id)
        if not roles:
            raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
        return user, project, roles

    def bootstrap_admin(self, user_id: str, project_id: str, password: str) -> None:
        """First start: the admin project and user with the generated password."""
        if self.session.get(ProjectRow, project_id) is None:
            self.create_project("admin", "Bootstrap project", project_id)
        if self.session.get(UserRow, user_id) is None:
            self.create_user("admin", password, project_id, user_id)
        self.grant(user_id, project_id, "admin")
