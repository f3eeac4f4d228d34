"""Keystone's identity API: users and groups, with group membership
(keystone/api/users.py, keystone/api/groups.py, keystone/identity/core.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qosplane.api.auth import utcnow
from qosplane.api.common import Services, authorize, context, empty, json_body, ok
from qosplane.api.keystone.bodies import (
    GROUP_ATTRIBUTES,
    USER_ATTRIBUTES,
    extra_attributes,
    flag,
    group_json,
    optional_ref,
    project_json,
    query_flag,
    required_name,
    text,
    user_json,
)
from qosplane.api.keystone.resource import caller_domain
from qosplane.model.errors import InvalidInput
from qosplane.store.identity import UNSET, IdentityRepository


async def list_users(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_users")
    q = request.query_params
    with services.db.transaction() as s:
        rows = IdentityRepository(s).users(
            q.get("name"), query_flag(q, "enabled"), domain_id=q.get("domain_id")
        )
        return ok({"users": [user_json(r) for r in rows], "links": {}})


async def create_user(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    authorize(services, ctx, "identity:create_user")
    body = await json_body(request, "user")
    name = required_name(body, "user", 255)
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("user.password", password, "a string or null")
    project = optional_ref(body, "default_project_id", "user.default_project_id")
    enabled = flag(body, "enabled", "user.enabled")
    description = text(body, "description", "user.description", 255)
    email = text(body, "email", "user.email", 255)
    domain_id = optional_ref(body, "domain_id", "user.domain_id")
    with services.db.transaction() as s:
        repo = services.identity(s)
        row = repo.create_user(
            name,
            password,
            project if isinstance(project, str) else None,
            enabled=True if enabled is None else enabled,
            description=description or "",
            email=email,
            extra=extra_attributes(body, USER_ATTRIBUTES),
            domain_id=domain_id if isinstance(domain_id, str) else caller_domain(repo, ctx),
        )
        return ok({"user": user_json(row)}, status=201)


async def show_user(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        authorize(services, ctx, "identity:get_user")
    with services.db.transaction() as s:
        return ok({"user": user_json(IdentityRepository(s).user(ref))})


async def update_user(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_user")
    body = await json_body(request, "user")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("user.password", password, "a string")
    email = text(body, "email", "user.email", 255) if body.get("email") is not None else None
    with services.db.transaction() as s:
        repo = services.identity(s)
        current = repo.user(request.path_params["user_id"])
        # keystone/identity/core.py update_user: "Cannot change Domain ID" (400).
        if "domain_id" in body and body["domain_id"] != current.domain_id:
            raise InvalidInput(
                "user.domain_id", body["domain_id"], f"unchanged ({current.domain_id})"
            )
        row = repo.update_user(
            request.path_params["user_id"],
            utcnow().timestamp(),
            name=text(body, "name", "user.name", 255, 1),
            password=password,
            enabled=flag(body, "enabled", "user.enabled"),
            description=text(body, "description", "user.description", 255),
            email=email if "email" in body else UNSET,
            default_project_id=optional_ref(body, "default_project_id", "user.default_project_id"),
            extra=extra_attributes(body, USER_ATTRIBUTES),
        )
        return ok({"user": user_json(row)})


async def delete_user(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_user")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_user(request.path_params["user_id"])
    return empty(204)


async def change_password(request: Request, services: Services) -> Response:
    """Self-service (keystone/api/users.py UserChangePasswordResource: no policy check
    beyond being that user); every token of the user is void afterwards."""
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        authorize(services, ctx, "identity:change_password")
    body = await json_body(request, "user")
    original, new = body.get("original_password"), body.get("password")
    if not isinstance(original, str):
        raise InvalidInput("user.original_password", original, "a string", "required")
    if not isinstance(new, str) or not new:
        raise InvalidInput("user.password", new, "a non-empty string", "required")
    with services.db.transaction() as s:
        services.identity(s).change_password(ref, original, new, utcnow().timestamp())
    return empty(204)


async def list_user_projects(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        authorize(services, ctx, "identity:list_user_projects")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        repo.user(ref)
        ids = {a.project_id for a in repo.assignments(user_id=ref)}
        groups = repo.group_ids_of(ref)
        if groups:
            ids |= {g.target_id for g in repo.group_assignments(group_ids=groups)}
        rows = repo.projects(ids=ids)
        return ok({"projects": [project_json(r) for r in rows], "links": {}})


async def list_groups(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_groups")
    q = request.query_params
    with services.db.transaction() as s:
        rows = IdentityRepository(s).groups(q.get("name"), q.get("domain_id"))
        return ok({"groups": [group_json(r) for r in rows], "links": {}})


async def create_group(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    authorize(services, ctx, "identity:create_group")
    body = await json_body(request, "group")
    name = required_name(body, "group", 64)
    domain_id = optional_ref(body, "domain_id", "group.domain_id")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        row = repo.create_group(
            name,
            domain_id if isinstance(domain_id, str) else caller_domain(repo, ctx),
            text(body, "description", "group.description", 255) or "",
            extra_attributes(body, GROUP_ATTRIBUTES),
        )
        return ok({"group": group_json(row)}, status=201)


async def show_group(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:get_group")
    with services.db.transaction() as s:
        return ok(
            {"group": group_json(IdentityRepository(s).group(request.path_params["group_id"]))}
        )


async def update_group(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_group")
    body = await json_body(request, "group")
    if "domain_id" in body:
        raise InvalidInput(
            "group.domain_id", body["domain_id"], "unchanged (a group stays in its domain)"
        )
    with services.db.transaction() as s:
        row = IdentityRepository(s).update_group(
            request.path_params["group_id"],
            text(body, "name", "group.name", 64, 1),
            text(body, "description", "group.description", 255),
            extra_attributes(body, GROUP_ATTRIBUTES),
        )
        return ok({"group": group_json(row)})


async def delete_group(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_group")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_group(request.path_params["group_id"])
    return empty(204)


async def group_member(request: Request, services: Services) -> Response:
    """PUT adds, HEAD/GET check (204 or 404), DELETE removes a user from a group
    (keystone/api/groups.py UserGroupCRUDResource); a removed member loses the group's
    roles at its next request."""
    ctx = context(request, services)
    rule = {
        "PUT": "identity:add_user_to_group",
        "DELETE": "identity:remove_user_from_group",
    }.get(request.method, "identity:check_user_in_group")
    authorize(services, ctx, rule)
    group, user = request.path_params["group_id"], request.path_params["user_id"]
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if request.method == "PUT":
            repo.add_member(group, user)
        elif request.method == "DELETE":
            repo.remove_member(group, user)
        else:
            repo.membership(group, user)
    return empty(204)


async def list_group_users(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_users_in_group")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).members(request.path_params["group_id"])
        return ok({"users": [user_json(r) for r in rows], "links": {}})


async def list_user_groups(request: Request, services: Services) -> Response:
    """A user lists its own groups; anyone else needs identity:list_groups_for_user."""
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        authorize(services, ctx, "identity:list_groups_for_user")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).groups(member=ref)
        return ok({"groups": [group_json(r) for r in rows], "links": {}})
