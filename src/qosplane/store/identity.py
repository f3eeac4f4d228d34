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

from qosplane.model.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from qosplane.store.database import fetch
from qosplane.store.tables import (
    GroupMemberRow,
    GroupRoleAssignmentRow,
    GroupRow,
    ImpliedRoleRow,
    ProjectRow,
    RevokedTokenRow,
    RoleAssignmentRow,
    RoleRow,
    SystemGroupRoleAssignmentRow,
    SystemRoleAssignmentRow,
    UserRow,
)

# Keystone's default roles (keystone/cmd/bootstrap.py), seeded by migration 0009 with
# id = name, with admin -> manager -> member -> reader as implied-role rows.
DEFAULT_ROLES = ("admin", "manager", "member", "reader")
DENIED = "The request you have made requires authentication."
DEFAULT_DOMAIN = "default"
# A domain's own domain_id: keystone/resource/backends/base.py NULL_DOMAIN_ID.
ROOT_DOMAIN = "<<keystone.domain.root>>"
# keystone.conf [DEFAULT] max_project_tree_depth, default 5 (keystone/conf/default.py).
MAX_PROJECT_TREE_DEPTH = 5
# keystone.conf [assignment] prohibited_implied_role: roles no rule may imply.
PROHIBITED_IMPLIED_ROLES = ("admin",)


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
# PBKDF2-SHA256 iterations for a new password. Like Keystone's `[identity]
# password_hash_rounds` (keystone/conf/identity.py) it is a setting, `serve
# --password-hash-rounds`, that affects new passwords only: each hash names its own
# rounds, so stored passwords keep working when it changes.
DEFAULT_PASSWORD_HASH_ROUNDS = 200_000
# Keystone takes 1 to 2^32-1 rounds for its PBKDF2; qosplane keeps its top but refuses
# fewer than 1,000, which would make a stolen database nearly a list of passwords.
PASSWORD_HASH_ROUNDS_MIN = 1_000
PASSWORD_HASH_ROUNDS_MAX = (1 << 32) - 1


def hash_password(password: str, rounds: int = DEFAULT_PASSWORD_HASH_ROUNDS) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), rounds)
    return f"pbkdf2_sha256${rounds}${salt}${digest.hex()}"


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
    def __init__(
        self, session: Session, password_hash_rounds: int = DEFAULT_PASSWORD_HASH_ROUNDS
    ) -> None:
        self.session = session
        self.password_hash_rounds = password_hash_rounds  # for the passwords it sets

    # --- domains and projects ----------------------------------------------------------

    def create_domain(
        self,
        name: str,
        description: str = "",
        domain_id: str | None = None,
        enabled: bool = True,
        tags: tuple[str, ...] = (),
        extra: dict[str, object] | None = None,
    ) -> ProjectRow:
        """A domain is a project row acting as one (keystone/resource/core.py)."""
        self._unique_name(ROOT_DOMAIN, name, "domain")
        row = ProjectRow(
            id=domain_id or uuid.uuid4().hex,
            name=name,
            description=description,
            enabled=enabled,
            domain_id=ROOT_DOMAIN,
            parent_id=None,
            is_domain=True,
            tags_json=json.dumps(list(tags)),
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def domain(self, ref: str) -> ProjectRow:
        row = self.session.get(ProjectRow, ref)
        if row is None or not row.is_domain:
            raise NotFound("Domain", ref)
        return row

    def domain_named(self, name: str) -> ProjectRow:
        row = self.session.scalar(
            select(ProjectRow).where(ProjectRow.is_domain, ProjectRow.name == name)
        )
        if row is None:
            raise NotFound("Domain", name)
        return row

    def domains(self, name: str | None = None, enabled: bool | None = None) -> list[ProjectRow]:
        return self.projects(name, enabled, is_domain=True)

    def delete_domain(self, ref: str) -> None:
        """Keystone refuses to delete an enabled domain (403, "please disable it first"),
        then deletes everything in it: projects, users, groups, its own roles
        (keystone/resource/core.py, delete_domain)."""
        row = self.domain(ref)
        if row.enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        for project in sorted(self.projects(domain_id=ref), key=lambda p: -len(self._ancestors(p))):
            self._drop_project(project)
        for user in self.users(domain_id=ref):
            self.delete_user(user.id)
        self.session.execute(delete(GroupRow).where(GroupRow.domain_id == ref))
        for role in self.roles(domain_id=ref):
            self.delete_role(role.id)
        self._drop_project(row)

    def create_project(
        self,
        name: str,
        description: str = "",
        project_id: str | None = None,
        enabled: bool = True,
        tags: tuple[str, ...] = (),
        extra: dict[str, object] | None = None,
        domain_id: str = DEFAULT_DOMAIN,
        parent_id: str | None = None,
    ) -> ProjectRow:
        """A project in a domain, under a parent in that domain (the domain itself when no
        parent is named), at most MAX_PROJECT_TREE_DEPTH deep (keystone/resource/core.py,
        _assert_max_hierarchy_depth; keystone.conf [DEFAULT] max_project_tree_depth)."""
        self.domain(domain_id)
        if parent_id is not None and parent_id != domain_id:
            parent = self.project(parent_id)
            if parent.domain_id != domain_id:
                raise InvalidInput(
                    "project.parent_id", parent_id, f"a project in domain {domain_id}"
                )
            # The new project sits below the parent and all of its ancestors.
            if len(self._ancestors(parent)) + 2 > MAX_PROJECT_TREE_DEPTH:
                raise Forbidden(
                    f"Max hierarchy depth reached for {parent_id} branch "
                    f"({MAX_PROJECT_TREE_DEPTH})."
                )
        self._unique_name(domain_id, name, "project")
        row = ProjectRow(
            id=project_id or uuid.uuid4().hex,
            name=name,
            description=description,
            enabled=enabled,
            domain_id=domain_id,
            parent_id=parent_id or domain_id,
            is_domain=False,
            tags_json=json.dumps(list(tags)),
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def _ancestors(self, row: ProjectRow) -> list[str]:
        """The project ids above `row`, nearest first, up to (not including) its domain."""
        out: list[str] = []
        parent = row.parent_id
        while parent is not None and parent != row.domain_id and parent not in out:
            out.append(parent)
            above = self.session.get(ProjectRow, parent)
            parent = above.parent_id if above is not None else None
        return out

    def _unique_name(self, domain_id: str, name: str, kind: str, other_than: str = "") -> None:
        """Names are unique within a domain (domains among themselves), as Keystone's
        (domain_id, name) unique constraints make them; a clash is 409."""
        table: type[ProjectRow] | type[UserRow] | type[GroupRow] = (
            UserRow if kind == "user" else GroupRow if kind == "group" else ProjectRow
        )
        existing = self.session.scalar(
            select(table.id).where(table.domain_id == domain_id, table.name == name)
        )
        if existing is not None and existing != other_than:
            raise Conflict(
                "name", f"Conflict occurred attempting to store {kind} - Duplicate entry {name}."
            )

    def project(self, ref: str) -> ProjectRow:
        return fetch(self.session, ProjectRow, ref, "Project")

    def projects(
        self,
        name: str | None = None,
        enabled: bool | None = None,
        ids: set[str] | None = None,
        domain_id: str | None = None,
        parent_id: str | None = None,
        is_domain: bool = False,
    ) -> list[ProjectRow]:
        """Projects, or with `is_domain` the domains (Keystone lists projects acting as
        domains only when asked: `GET /v3/projects?is_domain=true`)."""
        query = select(ProjectRow).where(ProjectRow.is_domain == is_domain)
        if name is not None:
            query = query.where(ProjectRow.name == name)
        if enabled is not None:
            query = query.where(ProjectRow.enabled == enabled)
        if ids is not None:
            query = query.where(ProjectRow.id.in_(ids))
        if domain_id is not None:
            query = query.where(ProjectRow.domain_id == domain_id)
        if parent_id is not None:
            query = query.where(ProjectRow.parent_id == parent_id)
        return list(self.session.scalars(query.order_by(ProjectRow.name, ProjectRow.id)))

    def update_project(
        self,
        ref: str,
        name: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        tags: tuple[str, ...] | None = None,
        extra: dict[str, object] | None = None,
    ) -> ProjectRow:
        """A disabled project's (or domain's) tokens stop working at once: every request
        checks it."""
        row = self.project(ref)
        if tags is not None:
            row.tags_json = json.dumps(list(tags))
        if extra:
            row.extra_json = json.dumps(json.loads(row.extra_json) | extra)
        if name is not None:
            self._unique_name(row.domain_id, name, "domain" if row.is_domain else "project", row.id)
            row.name = name
        if description is not None:
            row.description = description
        if enabled is not None:
            row.enabled = enabled
        self.session.flush()
        return row

    def delete_project(self, ref: str) -> None:
        """A project with children is not deleted (403, keystone/resource/core.py
        _delete_project: "not a leaf in the hierarchy"); a project acting as a domain is
        deleted as the domain."""
        row = self.project(ref)
        if row.is_domain:
            self.delete_domain(ref)
            return
        if self.projects(parent_id=ref):
            raise Forbidden(
                f"Cannot delete the project {ref} since it is not a leaf in the hierarchy."
            )
        self._drop_project(row)

    def _drop_project(self, row: ProjectRow) -> None:
        self.session.execute(
            delete(RoleAssignmentRow).where(RoleAssignmentRow.project_id == row.id)
        )
        self.session.execute(
            delete(GroupRoleAssignmentRow).where(GroupRoleAssignmentRow.target_id == row.id)
        )
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
        domain_id: str = DEFAULT_DOMAIN,
    ) -> UserRow:
        """A user without a password (Keystone allows it) cannot log in with one."""
        if password is not None and not password:
            raise InvalidInput("user.password", "", "a non-empty password")
        self.domain(domain_id)
        self._unique_name(domain_id, name, "user")
        if default_project_id is not None:
            self.project(default_project_id)
        row = UserRow(
            id=user_id or uuid.uuid4().hex,
            name=name,
            domain_id=domain_id,
            password_hash=(
                hash_password(password, self.password_hash_rounds) if password is not None else ""
            ),
            default_project_id=default_project_id,
            enabled=enabled,
            description=description,
            email=email,
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def user(self, ref: str) -> UserRow:
        return fetch(self.session, UserRow, ref, "User")

    def users(
        self,
        name: str | None = None,
        enabled: bool | None = None,
        domain_id: str | None = None,
        ids: set[str] | None = None,
    ) -> list[UserRow]:
        query = select(UserRow).order_by(UserRow.name, UserRow.id)
        if domain_id is not None:
            query = query.where(UserRow.domain_id == domain_id)
        if ids is not None:
            query = query.where(UserRow.id.in_(ids))
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
            self._unique_name(row.domain_id, name, "user", row.id)
            row.name = name
        if password is not None:
            if not password:
                raise InvalidInput("user.password", "", "a non-empty password")
            row.password_hash = hash_password(password, self.password_hash_rounds)
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

    # --- groups ---------------------------------------------------------------------

    def create_group(
        self,
        name: str,
        domain_id: str = DEFAULT_DOMAIN,
        description: str = "",
        extra: dict[str, object] | None = None,
    ) -> GroupRow:
        self.domain(domain_id)
        self._unique_name(domain_id, name, "group")
        row = GroupRow(
            id=uuid.uuid4().hex,
            name=name,
            domain_id=domain_id,
            description=description,
            extra_json=json.dumps(extra or {}),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def group(self, ref: str) -> GroupRow:
        return fetch(self.session, GroupRow, ref, "Group")

    def groups(
        self, name: str | None = None, domain_id: str | None = None, member: str | None = None
    ) -> list[GroupRow]:
        query = select(GroupRow).order_by(GroupRow.name, GroupRow.id)
        if name is not None:
            query = query.where(GroupRow.name == name)
        if domain_id is not None:
            query = query.where(GroupRow.domain_id == domain_id)
        if member is not None:
            self.user(member)
            query = query.join(GroupMemberRow, GroupMemberRow.group_id == GroupRow.id).where(
                GroupMemberRow.user_id == member
            )
        return list(self.session.scalars(query))

    def update_group(
        self,
        ref: str,
        name: str | None = None,
        description: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> GroupRow:
        row = self.group(ref)
        if name is not None:
            self._unique_name(row.domain_id, name, "group", row.id)
            row.name = name
        if description is not None:
            row.description = description
        if extra:
            row.extra_json = json.dumps(json.loads(row.extra_json) | extra)
        self.session.flush()
        return row

    def delete_group(self, ref: str) -> None:
        """Its members lose the group's roles at their next request."""
        self.session.delete(self.group(ref))
        self.session.flush()

    def add_member(self, group_id: str, user_id: str) -> None:
        self.group(group_id)
        self.user(user_id)
        if self.session.get(GroupMemberRow, (group_id, user_id)) is None:
            self.session.add(GroupMemberRow(group_id=group_id, user_id=user_id))
            self.session.flush()

    def membership(self, group_id: str, user_id: str) -> GroupMemberRow:
        self.group(group_id)
        self.user(user_id)
        row = self.session.get(GroupMemberRow, (group_id, user_id))
        if row is None:
            # keystone/identity/core.py check_user_in_group: NotFound for the pair.
            raise NotFound("User in group", f"{user_id} in {group_id}")
        return row

    def remove_member(self, group_id: str, user_id: str) -> None:
        self.session.delete(self.membership(group_id, user_id))
        self.session.flush()

    def members(self, group_id: str) -> list[UserRow]:
        self.group(group_id)
        ids = set(
            self.session.scalars(
                select(GroupMemberRow.user_id).where(GroupMemberRow.group_id == group_id)
            )
        )
        return self.users(ids=ids)

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
            delete(GroupRoleAssignmentRow).where(GroupRoleAssignmentRow.role == ref)
        )
        self.session.execute(
            delete(SystemRoleAssignmentRow).where(SystemRoleAssignmentRow.role == ref)
        )
        self.session.execute(
            delete(SystemGroupRoleAssignmentRow).where(SystemGroupRoleAssignmentRow.role == ref)
        )
        self.session.execute(
            delete(ImpliedRoleRow).where(
                or_(ImpliedRoleRow.prior_role_id == ref, ImpliedRoleRow.implied_role_id == ref)
            )
        )
        self.session.delete(row)
        self.session.flush()

    def imply(self, prior: str, implied: str) -> None:
        """keystone/assignment/core.py create_implied_role: a prohibited role, or a
        domain-specific role implied by a global one, is refused (403 InvalidImpliedRole)."""
        prior_row = self.role(prior)
        implied_row = self.role(implied)
        if implied_row.name in PROHIBITED_IMPLIED_ROLES or (
            implied_row.domain_id is not None and prior_row.domain_id is None
        ):
            raise Forbidden(f"{implied} cannot be an implied roles.")
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

    def target(self, ref: str, domain: bool) -> ProjectRow:
        """The project (or with `domain` the domain) a grant names; the wrong kind is 404,
        as Keystone looks each up in its own API."""
        return self.domain(ref) if domain else self._plain_project(ref)

    def _plain_project(self, ref: str) -> ProjectRow:
        row = self.session.get(ProjectRow, ref)
        if row is None or row.is_domain:
            raise NotFound("Project", ref)
        return row

    def grant(self, user_id: str, project_id: str, role: str, domain: bool = False) -> None:
        self.role(role)
        self.user(user_id)
        self.target(project_id, domain)
        if self.session.get(RoleAssignmentRow, (user_id, project_id, role)) is None:
            self.session.add(RoleAssignmentRow(user_id=user_id, project_id=project_id, role=role))
            self.session.flush()

    def assignment(
        self, user_id: str, project_id: str, role: str, domain: bool = False
    ) -> RoleAssignmentRow:
        self.role(role)
        self.user(user_id)
        self.target(project_id, domain)
        row = self.session.get(RoleAssignmentRow, (user_id, project_id, role))
        if row is None:
            raise NotFound("Role assignment", f"{role} of {user_id} on {project_id}")
        return row

    def revoke(self, user_id: str, project_id: str, role: str, domain: bool = False) -> None:
        """The user's tokens on that project lose the role at once (roles are recomputed
        on every request), as Keystone's revocation on assignment removal does."""
        self.session.delete(self.assignment(user_id, project_id, role, domain))
        self.session.flush()

    def grant_group(self, group_id: str, target_id: str, role: str, domain: bool) -> None:
        self.role(role)
        self.group(group_id)
        self.target(target_id, domain)
        if self.session.get(GroupRoleAssignmentRow, (group_id, target_id, role)) is None:
            self.session.add(
                GroupRoleAssignmentRow(group_id=group_id, target_id=target_id, role=role)
            )
            self.session.flush()

    def group_assignment(
        self, group_id: str, target_id: str, role: str, domain: bool
    ) -> GroupRoleAssignmentRow:
        self.role(role)
        self.group(group_id)
        self.target(target_id, domain)
        row = self.session.get(GroupRoleAssignmentRow, (group_id, target_id, role))
        if row is None:
            raise NotFound("Role assignment", f"{role} of group {group_id} on {target_id}")
        return row

    def revoke_group(self, group_id: str, target_id: str, role: str, domain: bool) -> None:
        self.session.delete(self.group_assignment(group_id, target_id, role, domain))
        self.session.flush()

    def assignments(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        role: str | None = None,
    ) -> list[RoleAssignmentRow]:
        """Users' grants; `project_id` names a project or a domain."""
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

    def group_assignments(
        self,
        group_ids: set[str] | None = None,
        target_id: str | None = None,
        role: str | None = None,
    ) -> list[GroupRoleAssignmentRow]:
        query = select(GroupRoleAssignmentRow).order_by(
            GroupRoleAssignmentRow.target_id,
            GroupRoleAssignmentRow.group_id,
            GroupRoleAssignmentRow.role,
        )
        if group_ids is not None:
            query = query.where(GroupRoleAssignmentRow.group_id.in_(group_ids))
        if target_id is not None:
            query = query.where(GroupRoleAssignmentRow.target_id == target_id)
        if role is not None:
            query = query.where(GroupRoleAssignmentRow.role == role)
        return list(self.session.scalars(query))

    def group_ids_of(self, user_id: str) -> set[str]:
        return set(
            self.session.scalars(
                select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == user_id)
            )
        )

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

    def grant_group_system(self, group_id: str, role: str) -> None:
        self.role(role)
        self.group(group_id)
        if self.session.get(SystemGroupRoleAssignmentRow, (group_id, role)) is None:
            self.session.add(SystemGroupRoleAssignmentRow(group_id=group_id, role=role))
            self.session.flush()

    def group_system_assignment(self, group_id: str, role: str) -> SystemGroupRoleAssignmentRow:
        self.role(role)
        self.group(group_id)
        row = self.session.get(SystemGroupRoleAssignmentRow, (group_id, role))
        if row is None:
            raise NotFound("Role assignment", f"{role} of group {group_id} on the system")
        return row

    def revoke_group_system(self, group_id: str, role: str) -> None:
        self.session.delete(self.group_system_assignment(group_id, role))
        self.session.flush()

    def group_system_assignments(
        self, group_ids: set[str] | None = None
    ) -> list[SystemGroupRoleAssignmentRow]:
        query = select(SystemGroupRoleAssignmentRow).order_by(
            SystemGroupRoleAssignmentRow.group_id, SystemGroupRoleAssignmentRow.role
        )
        if group_ids is not None:
            query = query.where(SystemGroupRoleAssignmentRow.group_id.in_(group_ids))
        return list(self.session.scalars(query))

    def direct_group_system_roles(self, group_id: str) -> list[RoleRow]:
        return list(
            self.session.scalars(
                select(RoleRow)
                .join(SystemGroupRoleAssignmentRow, SystemGroupRoleAssignmentRow.role == RoleRow.id)
                .where(SystemGroupRoleAssignmentRow.group_id == group_id)
                .order_by(RoleRow.name)
            )
        )

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

    def direct_group_roles(self, group_id: str, target_id: str) -> list[RoleRow]:
        return list(
            self.session.scalars(
                select(RoleRow)
                .join(GroupRoleAssignmentRow, GroupRoleAssignmentRow.role == RoleRow.id)
                .where(
                    GroupRoleAssignmentRow.group_id == group_id,
                    GroupRoleAssignmentRow.target_id == target_id,
                )
                .order_by(RoleRow.name)
            )
        )

    def expand(self, role_ids: set[str]) -> list[RoleRow]:
        """The roles `role_ids` amount to: themselves and all they imply, less
        domain-specific roles, which never reach a token (Keystone expands them away,
        keystone/assignment/core.py _expand_indirect_assignment)."""
        if not role_ids:
            return []
        ids = self._closure(role_ids)
        rows = self.session.scalars(select(RoleRow).where(RoleRow.id.in_(ids)))
        return [r for r in rows if r.domain_id is None]

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
            groups = self.group_ids_of(user_id)
            if groups:
                direct |= {g.role for g in self.group_system_assignments(groups)}
        else:
            direct = set(
                self.session.scalars(
                    select(RoleAssignmentRow.role).where(
                        RoleAssignmentRow.user_id == user_id,
                        RoleAssignmentRow.project_id == project_id,
                    )
                )
            )
            groups = self.group_ids_of(user_id)
            if groups:
                direct |= {
                    g.role for g in self.group_assignments(group_ids=groups, target_id=project_id)
                }
        names = {r.name for r in self.expand(direct)}
        if not names:
            return ()
        ordered = [r for r in DEFAULT_ROLES if r in names]
        return tuple(ordered + sorted(names - set(DEFAULT_ROLES)))

    # --- tokens -----------------------------------------------------------------------

    def _auth_domain(self, domain_id: str | None, domain_name: str | None) -> str | None:
        """The enabled domain an auth request names by id or name (None when it names
        none); an unknown or disabled one is the same 401 as a wrong password."""
        if domain_id is None and domain_name is None:
            return None
        if domain_id is not None:
            row = self.session.get(ProjectRow, domain_id)
        else:
            row = self.session.scalar(
                select(ProjectRow).where(ProjectRow.is_domain, ProjectRow.name == domain_name)
            )
        if row is None or not row.is_domain or not row.enabled:
            raise Unauthorized(DENIED)
        return row.id

    def _enabled_in_domain(self, domain_id: str) -> bool:
        row = self.session.get(ProjectRow, domain_id)
        return row is not None and row.enabled

    def authenticate(
        self,
        user_id: str | None,
        user_name: str | None,
        password: str,
        project_name: str | None,
        project_id: str | None,
        system: bool = False,
        user_domain: tuple[str | None, str | None] = (None, None),
        project_domain: tuple[str | None, str | None] = (None, None),
    ) -> tuple[UserRow, ProjectRow | None, tuple[str, ...]]:
        """The user (by id, else by name within its domain), its project (None for a
        system-scoped or an unscoped token, which has no roles) and roles; one answer
        (401) for every failure, so a caller learns nothing about which part was wrong.
        A name without a domain is looked up in the default domain. Domains are given
        as (id, name), either may be None."""
        denied = Unauthorized(DENIED)
        if user_id is not None:
            user = self.session.get(UserRow, user_id)
        elif user_name:
            in_domain = self._auth_domain(*user_domain) or DEFAULT_DOMAIN
            user = next(iter(self.users(user_name, domain_id=in_domain)), None)
        else:
            user = None
        if (
            user is None
            or not user.enabled
            or not self._enabled_in_domain(user.domain_id)
            or not check_password(password, user.password_hash)
        ):
            raise denied
        if system:
            system_roles = self.roles_of(user.id, None)
            if not system_roles:
                raise Unauthorized(f"User {user.id} has no access to the system.")
            return user, None, system_roles
        if project_id:
            project = self.session.get(ProjectRow, project_id)
        elif project_name:
            in_domain = self._auth_domain(*project_domain) or DEFAULT_DOMAIN
            project = next(iter(self.projects(project_name, domain_id=in_domain)), None)
        elif user.default_project_id is None:
            # No scope asked and no default project: an unscoped token, which names the
            # user only (keystone/auth/core.py); it carries no role.
            return user, None, ()
        else:
            project = self.session.get(ProjectRow, user.default_project_id)
        if (
            project is None
            or project.is_domain
            or not project.enabled
            or not self._enabled_in_domain(project.domain_id)
        ):
            raise denied
        roles = self.roles_of(user.id, project.id)
        if not roles:
            raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
        return user, project, roles

    def standing(self, claims: TokenClaims, now_unix_s: float) -> tuple[str, ...]:
        """The roles a still-valid token carries now, or 401: the user deleted, disabled or
        its tokens revoked since issue, the project or either's domain deleted or disabled,
        the token revoked,
        or no role left on the project. Checked on every request, so each of these ends
        access at once rather than at the token's expiry."""
        denied = Unauthorized(DENIED)
        user = self.session.get(UserRow, claims.user_id)
        if user is None or not user.enabled or not self._enabled_in_domain(user.domain_id):
            raise denied
        if (
            user.tokens_revoked_before_unix_s is not None
            and claims.issued_at_unix_s <= user.tokens_revoked_before_unix_s
        ):
            raise denied
        if not claims.system and claims.project_id:
            project = self.session.get(ProjectRow, claims.project_id)
            if (
                project is None
                or not project.enabled
                or not self._enabled_in_domain(project.domain_id)
            ):
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
