"""Keystone's data: projects, users with salted PBKDF2-SHA256 password hashes, roles with
implied roles (admin implies manager implies member implies reader, as data an operator can
extend), role assignments, and what makes a token void before it expires."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, InvalidInput, NotFound, Unauthorized
from qosplane.store.database import fetch
from qosplane.store.tables import (
    ImpliedRoleRow,
    ProjectRow,
    RevokedTokenRow,
    RoleAssignmentRow,
    RoleRow,
    SystemRoleAssignmentRow,
    UserRow,
)

# Keystone's default roles (keystone/cmd/bootstrap.py), seeded by migration 0009 with
# id = name, with admin -> manager -> member -> reader as implied-role rows.
DEFAULT_ROLES = ("admin", "manager", "member", "reader")
DENIED = "The request you have made requires authentication."


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a signed token says, to be held against the store on every request. A
    system-scoped token has no project."""

    user_id: str
    project_id: str
    audit_id: str
    issued_at_unix_s: float
    system: bool = False


@dataclass(frozen=True, slots=True)
class Unset:
    """A field a PATCH did not name (None is a value: `default_project_id: null`)."""


UNSET = Unset()
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

    # --- projects ---------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        description: str = "",
        project_id: str | None = None,
        enabled: bool = True,
        tags: tuple[str, ...] = (),
        extra: dict[str, object] | None = None,
    ) -> ProjectRow:
        self._unique_project_name(name)
        row = ProjectRow(
            id=project_id or uuid.uuid4().hex,
            name=name,
            description=description,
            enabled=enabled,
            tags_json=json.dumps(list(tags)),
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def _unique_project_name(self, name: str, other_than: str | None = None) -> None:
        existing = self.session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
        if existing is not None and existing != other_than:
            raise Conflict(
                "name", f"Conflict occurred attempting to store project - Duplicate entry {name}."
            )

    def project(self, ref: str) -> ProjectRow:
        return fetch(self.session, ProjectRow, ref, "Project")

    def projects(
        self, name: str | None = None, enabled: bool | None = None, ids: set[str] | None = None
    ) -> list[ProjectRow]:
        query = select(ProjectRow).order_by(ProjectRow.name)
        if name is not None:
            query = query.where(ProjectRow.name == name)
        if enabled is not None:
            query = query.where(ProjectRow.enabled == enabled)
        if ids is not None:
            query = query.where(ProjectRow.id.in_(ids))
        return list(self.session.scalars(query))

    def update_project(
        self,
        ref: str,
        name: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        tags: tuple[str, ...] | None = None,
        extra: dict[str, object] | None = None,
    ) -> ProjectRow:
        """A disabled project's tokens stop working at once: every request checks it."""
        row = self.project(ref)
        if tags is not None:
            row.tags_json = json.dumps(list(tags))
        if extra:
            row.extra_json = json.dumps(json.loads(row.extra_json) | extra)
        if name is not None:
            self._unique_project_name(name, other_than=row.id)
            row.name = name
        if description is not None:
            row.description = description
        if enabled is not None:
            row.enabled = enabled
        self.session.flush()
        return row

    def delete_project(self, ref: str) -> None:
        row = self.project(ref)
        self.session.execute(delete(RoleAssignmentRow).where(RoleAssignmentRow.project_id == ref))
        self.session.delete(row)
        self.session.flush()

    # --- users ------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        password: str | None,
        default_project_id: str | None = None,
        user_id: str | None = None,
        enabled: bool = True,
        description: str = "",
        email: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> UserRow:
        """A user without a password (Keystone allows it) cannot log in with one."""
        if password is not None and not password:
            raise InvalidInput("user.password", "", "a non-empty password")
        self._unique_user_name(name)
        if default_project_id is not None:
            self.project(default_project_id)
        row = UserRow(
            id=user_id or uuid.uuid4().hex,
            name=name,
            password_hash=hash_password(password) if password is not None else "",
            default_project_id=default_project_id,
            enabled=enabled,
            description=description,
            email=email,
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def _unique_user_name(self, name: str, other_than: str | None = None) -> None:
        existing = self.session.scalar(select(UserRow.id).where(UserRow.name == name))
        if existing is not None and existing != other_than:
            raise Conflict(
                "name", f"Conflict occurred attempting to store user - Duplicate entry {name}."
            )

    def user(self, ref: str) -> UserRow:
        return fetch(self.session, UserRow, ref, "User")

    def users(self, name: str | None = None, enabled: bool | None = None) -> list[UserRow]:
        query = select(UserRow).order_by(UserRow.name)
        if name is not None:
            query = query.where(UserRow.name == name)
        if enabled is not None:
            query = query.where(UserRow.enabled == enabled)
        return list(self.session.scalars(query))

    def update_user(
        self,
        ref: str,
        now_unix_s: float,
        name: str | None = None,
        password: str | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        email: str | Unset | None = UNSET,
        default_project_id: str | Unset | None = UNSET,
        extra: dict[str, object] | None = None,
    ) -> UserRow:
        """Disabling a user or changing its password voids every token it holds, as
        Keystone's revocation events do (keystone/identity/core.py, update_user)."""
        row = self.user(ref)
        if name is not None:
            self._unique_user_name(name, other_than=row.id)
            row.name = name
        if password is not None:
            if not password:
                raise InvalidInput("user.password", "", "a non-empty password")
            row.password_hash = hash_password(password)
            row.tokens_revoked_before_unix_s = now_unix_s
        if enabled is not None:
            if row.enabled and not enabled:
                row.tokens_revoked_before_unix_s = now_unix_s
            row.enabled = enabled
        if description is not None:
            row.description = description
        if extra:
            row.extra_json = json.dumps(json.loads(row.extra_json) | extra)
        if not isinstance(email, Unset):
            row.email = email
        if not isinstance(default_project_id, Unset):
            if default_project_id is not None:
                self.project(default_project_id)
            row.default_project_id = default_project_id
        self.session.flush()
        return row

    def change_password(self, ref: str, original: str, new: str, now_unix_s: float) -> None:
        """`POST /v3/users/{id}/password`: the original password must be right (401)."""
        row = self.session.get(UserRow, ref)
        if row is None or not check_password(original, row.password_hash):
            raise Unauthorized(DENIED)
        self.update_user(ref, now_unix_s, password=new)

    def delete_user(self, ref: str) -> None:
        row = self.user(ref)
        self.session.execute(delete(RoleAssignmentRow).where(RoleAssignmentRow.user_id == ref))
        self.session.execute(
            delete(SystemRoleAssignmentRow).where(SystemRoleAssignmentRow.user_id == ref)
        )
        self.session.delete(row)
        self.session.flush()

    # --- roles ------------------------------------------------------------------------

    def role(self, ref: str) -> RoleRow:
        return fetch(self.session, RoleRow, ref, "Role")

    def roles(self, name: str | None = None, domain_id: str | None = None) -> list[RoleRow]:
        """Global roles, or with `domain_id` that domain's own (Keystone lists them apart)."""
        query = select(RoleRow).where(
            RoleRow.domain_id == domain_id if domain_id else RoleRow.domain_id.is_(None)
        )
        if name is not None:
            query = query.where(RoleRow.name == name)
        return list(self.session.scalars(query.order_by(RoleRow.name)))

    def create_role(
        self, name: str, description: str = "", domain_id: str | None = None
    ) -> RoleRow:
        taken = self.session.scalar(
            select(RoleRow.id).where(
                RoleRow.name == name,
                RoleRow.domain_id == domain_id if domain_id else RoleRow.domain_id.is_(None),
            )
        )
        if taken is not None:
            raise Conflict(
                "name", f"Conflict occurred attempting to store role - Duplicate entry {name}."
            )
        row = RoleRow(id=uuid.uuid4().hex, name=name, description=description, domain_id=domain_id)
        self.session.add(row)
        self.session.flush()
        return row

    def update_role(self, ref: str, name: str | None, description: str | None) -> RoleRow:
        row = self.role(ref)
        if row.id in DEFAULT_ROLES and name is not None and name != row.name:
            # The defaults' names are what every policy's check strings say.
            raise InvalidInput("role.name", name, f"unchanged ({row.name}) for a default role")
        if name is not None:
            row.name = name
        if description is not None:
            row.description = description
        self.session.flush()
        return row

    def delete_role(self, ref: str) -> None:
        row = self.role(ref)
        if row.id in DEFAULT_ROLES:
            raise Conflict("role", f"Role {row.name} is a default role and cannot be deleted.")
        self.session.execute(delete(RoleAssignmentRow).where(RoleAssignmentRow.role == ref))
        self.session.execute(
            delete(SystemRoleAssignmentRow).where(SystemRoleAssignmentRow.role == ref)
        )
        self.session.execute(
            delete(ImpliedRoleRow).where(
                or_(ImpliedRoleRow.prior_role_id == ref, ImpliedRoleRow.implied_role_id == ref)
            )
        )
        self.session.delete(row)
        self.session.flush()

    def imply(self, prior: str, implied: str) -> None:
        self.role(prior)
        self.role(implied)
        if prior == implied or prior in self._closure({implied}):
            raise InvalidInput("implied_role", implied, f"a role that does not imply {prior}")
        if self.session.get(ImpliedRoleRow, (prior, implied)) is None:
            self.session.add(ImpliedRoleRow(prior_role_id=prior, implied_role_id=implied))
            self.session.flush()

    def implication(self, prior: str, implied: str) -> ImpliedRoleRow:
        self.role(prior)
        self.role(implied)
        row = self.session.get(ImpliedRoleRow, (prior, implied))
        if row is None:
            raise NotFound("Implied Role", f"{prior} implies {implied}")
        return row

    def unimply(self, prior: str, implied: str) -> None:
        self.session.delete(self.implication(prior, implied))
        self.session.flush()

    def implications(self, prior: str | None = None) -> list[ImpliedRoleRow]:
        query = select(ImpliedRoleRow).order_by(
            ImpliedRoleRow.prior_role_id, ImpliedRoleRow.implied_role_id
        )
        if prior is not None:
            self.role(prior)
            query = query.where(ImpliedRoleRow.prior_role_id == prior)
        return list(self.session.scalars(query))

    def _closure(self, role_ids: set[str]) -> set[str]:
        edges: dict[str, set[str]] = {}
        for row in self.session.scalars(select(ImpliedRoleRow)):
            edges.setdefault(row.prior_role_id, set()).add(row.implied_role_id)
        seen, todo = set(role_ids), list(role_ids)
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    # --- assignments ------------------------------------------------------------------

    def grant(self, user_id: str, project_id: str, role: str) -> None:
        self.role(role)
        self.user(user_id)
        self.project(project_id)
        if self.session.get(RoleAssignmentRow, (user_id, project_id, role)) is None:
            self.session.add(RoleAssignmentRow(user_id=user_id, project_id=project_id, role=role))
            self.session.flush()

    def assignment(self, user_id: str, project_id: str, role: str) -> RoleAssignmentRow:
        self.role(role)
        self.user(user_id)
        self.project(project_id)
        row = self.session.get(RoleAssignmentRow, (user_id, project_id, role))
        if row is None:
            raise NotFound("Role assignment", f"{role} of {user_id} on {project_id}")
        return row

    def revoke(self, user_id: str, project_id: str, role: str) -> None:
        """The user's tokens on that project lose the role at once (roles are recomputed
        on every request), as Keystone's revocation on assignment removal does."""
        self.session.delete(self.assignment(user_id, project_id, role))
        self.session.flush()

    def assignments(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        role: str | None = None,
    ) -> list[RoleAssignmentRow]:
        query = select(RoleAssignmentRow).order_by(
            RoleAssignmentRow.project_id, RoleAssignmentRow.user_id, RoleAssignmentRow.role
        )
        if user_id is not None:
            query = query.where(RoleAssignmentRow.user_id == user_id)
        if project_id is not None:
            query = query.where(RoleAssignmentRow.project_id == project_id)
        if role is not None:
            query = query.where(RoleAssignmentRow.role == role)
        return list(self.session.scalars(query))

    def grant_system(self, user_id: str, role: str) -> None:
        self.role(role)
        self.user(user_id)
        if self.session.get(SystemRoleAssignmentRow, (user_id, role)) is None:
            self.session.add(SystemRoleAssignmentRow(user_id=user_id, role=role))
            self.session.flush()

    def system_assignment(self, user_id: str, role: str) -> SystemRoleAssignmentRow:
        self.role(role)
        self.user(user_id)
        row = self.session.get(SystemRoleAssignmentRow, (user_id, role))
        if row is None:
            raise NotFound("Role assignment", f"{role} of {user_id} on the system")
        return row

    def revoke_system(self, user_id: str, role: str) -> None:
        self.session.delete(self.system_assignment(user_id, role))
        self.session.flush()

    def system_assignments(self, user_id: str | None = None) -> list[SystemRoleAssignmentRow]:
        query = select(SystemRoleAssignmentRow).order_by(
            SystemRoleAssignmentRow.user_id, SystemRoleAssignmentRow.role
        )
        if user_id is not None:
            query = query.where(SystemRoleAssignmentRow.user_id == user_id)
        return list(self.session.scalars(query))

    def direct_system_roles(self, user_id: str) -> list[RoleRow]:
        return list(
            self.session.scalars(
                select(RoleRow)
                .join(SystemRoleAssignmentRow, SystemRoleAssignmentRow.role == RoleRow.id)
                .where(SystemRoleAssignmentRow.user_id == user_id)
                .order_by(RoleRow.name)
            )
        )

    def direct_roles(self, user_id: str, project_id: str) -> list[RoleRow]:
        return list(
            self.session.scalars(
                select(RoleRow)
                .join(RoleAssignmentRow, RoleAssignmentRow.role == RoleRow.id)
                .where(
                    RoleAssignmentRow.user_id == user_id,
                    RoleAssignmentRow.project_id == project_id,
                )
                .order_by(RoleRow.name)
            )
        )

    def roles_of(self, user_id: str, project_id: str | None) -> tuple[str, ...]:
        """The names of the user's effective roles on the project (None: on the system):
        direct ones and all they imply. Domain-specific roles never appear in a token
        (Keystone expands them away)."""
        if project_id is None:
            direct = set(
                self.session.scalars(
                    select(SystemRoleAssignmentRow.role).where(
                        SystemRoleAssignmentRow.user_id == user_id
                    )
                )
            )
        else:
            direct = set(
                self.session.scalars(
                    select(RoleAssignmentRow.role).where(
                        RoleAssignmentRow.user_id == user_id,
                        RoleAssignmentRow.project_id == project_id,
                    )
                )
            )
        if not direct:
            return ()
        ids = self._closure(direct)
        rows = self.session.scalars(select(RoleRow).where(RoleRow.id.in_(ids)))
        names = {r.name for r in rows if r.domain_id is None}
        ordered = [r for r in DEFAULT_ROLES if r in names]
        return tuple(ordered + sorted(names - set(DEFAULT_ROLES)))

    # --- tokens -----------------------------------------------------------------------

    def authenticate(
        self,
        user_id: str | None,
        user_name: str | None,
        password: str,
        project_name: str | None,
        project_id: str | None,
        system: bool = False,
    ) -> tuple[UserRow, ProjectRow | None, tuple[str, ...]]:
        """The user (by id, else by name), its project (None for a system-scoped or an
        unscoped token, which has no roles) and roles; one answer (401) for every failure,
        so a caller learns nothing about which part was wrong."""
        denied = Unauthorized(DENIED)
        if user_id is not None:
            user = self.session.get(UserRow, user_id)
        else:
            user = next(iter(self.users(user_name)), None) if user_name else None
        if user is None or not user.enabled or not check_password(password, user.password_hash):
            raise denied
        if system:
            system_roles = self.roles_of(user.id, None)
            if not system_roles:
                raise Unauthorized(f"User {user.id} has no access to the system.")
            return user, None, system_roles
        if project_id:
            project = self.session.get(ProjectRow, project_id)
        elif project_name:
            project = next(iter(self.projects(project_name)), None)
        elif user.default_project_id is None:
            # No scope asked and no default project: an unscoped token, which names the
            # user only (keystone/auth/core.py); it carries no role.
            return user, None, ()
        else:
            project = self.session.get(ProjectRow, user.default_project_id)
        if project is None or not project.enabled:
            raise denied
        roles = self.roles_of(user.id, project.id)
        if not roles:
            raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
        return user, project, roles

    def standing(self, claims: TokenClaims, now_unix_s: float) -> tuple[str, ...]:
        """The roles a still-valid token carries now, or 401: the user deleted, disabled or
        its tokens revoked since issue, the project deleted or disabled, the token revoked,
        or no role left on the project. Checked on every request, so each of these ends
        access at once rather than at the token's expiry."""
        denied = Unauthorized(DENIED)
        user = self.session.get(UserRow, claims.user_id)
        if user is None or not user.enabled:
            raise denied
        if (
            user.tokens_revoked_before_unix_s is not None
            and claims.issued_at_unix_s <= user.tokens_revoked_before_unix_s
        ):
            raise denied
        if not claims.system and claims.project_id:
            project = self.session.get(ProjectRow, claims.project_id)
            if project is None or not project.enabled:
                raise denied
        if self.session.get(RevokedTokenRow, claims.audit_id) is not None:
            raise Unauthorized("The token has been revoked.")
        if not claims.system and not claims.project_id:
            return ()  # unscoped: the user's own identity, no role
        roles = self.roles_of(user.id, None if claims.system else claims.project_id)
        if not roles:
            raise denied
        return roles

    def revoke_token(self, audit_id: str, expires_at_unix_s: float, now_unix_s: float) -> None:
        """Kept until it would have expired anyway; expired entries are pruned here."""
        self.session.execute(
            delete(RevokedTokenRow).where(RevokedTokenRow.expires_at_unix_s < now_unix_s)
        )
        if self.session.get(RevokedTokenRow, audit_id) is None:
            self.session.add(
                RevokedTokenRow(audit_id=audit_id, expires_at_unix_s=expires_at_unix_s)
            )
        self.session.flush()

    def bootstrap_admin(self, user_id: str, project_id: str, password: str) -> None:
        """First start: the admin project and user with the generated password."""
        if self.session.get(ProjectRow, project_id) is None:
            self.create_project("admin", "Bootstrap project", project_id)
        if self.session.get(UserRow, user_id) is None:
            self.create_user("admin", password, project_id, user_id)
        self.grant(user_id, project_id, "admin")
