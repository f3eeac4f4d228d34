"""Keystone v3 subset: version documents, password tokens with a catalog that can be
validated and revoked, projects, users, roles with implied roles, role assignments.

Semantics are Keystone's (keystone/api/*.py, keystone/identity/schema.py,
keystone/resource/schema.py, keystone/assignment/schema.py); where a call is admin-only the
check is Keystone's default `admin_required` (keystone/common/policies/base.py), with the
owner exceptions the defaults make (a user reads itself, a project member its project).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import TOKEN_LIFETIME, Context, utcnow
from qosplane.api.common import (
    Services,
    authorize,
    base_url,
    context,
    empty,
    json_body,
    ok,
    standing,
    wrap,
)
from qosplane.model.errors import InvalidInput, NotFound, Unauthorized
from qosplane.store.identity import UNSET, IdentityRepository, Unset
from qosplane.store.views import ProjectView, RoleView, UserView

DOMAIN = {"id": "default", "name": "Default"}


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url(request)}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


async def versions(request: Request, services: Services) -> Response:
    return ok({"versions": {"values": [_version(request)]}}, status=300)


async def version(request: Request, services: Services) -> Response:
    return ok({"version": _version(request)})


def catalog(request: Request, project_id: str) -> list[dict[str, Any]]:
    root = base_url(request)
    entries = [
        ("identity", "keystone", f"{root}/identity"),
        ("compute", "nova", f"{root}/compute/v2.1"),
        ("network", "neutron", f"{root}/networking"),
        ("image", "glance", f"{root}/image"),
        # DevStack registers Cinder as `block-storage` (tempest's default catalog_type);
        # older clients still look for `volumev3`.
        ("block-storage", "cinder", f"{root}/volume/v3/{project_id}"),
        ("volumev3", "cinderv3", f"{root}/volume/v3/{project_id}"),
    ]
    return [
        {
            "type": kind,
            "name": name,
            "id": kind,
            "endpoints": [
                {
                    "id": f"{kind}-{iface}",
                    "interface": iface,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": url,
                }
                for iface in ("public", "internal", "admin")
            ],
        }
        for kind, name, url in entries
    ]


def _object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """`parent[key]` as a JSON object ({} when absent); a 400 naming `path` otherwise."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(path, value, "a JSON object")
    return value


def _authenticate(body: dict[str, Any], services: Services) -> Context:
    identity = _object(body, "identity", "auth.identity")
    methods = identity.get("methods") or []
    if not isinstance(methods, list) or "password" not in methods:
        raise Unauthorized("The request you have made requires authentication.")
    user = _object(
        _object(identity, "password", "auth.identity.password"),
        "user",
        "auth.identity.password.user",
    )
    # Keystone identifies a password user by id, or by name within a domain
    # (keystone/auth/plugins/core.py, UserAuthInfo); tempest's dynamic credentials use ids.
    user_id, name, password = user.get("id"), user.get("name"), user.get("password")
    if not isinstance(password, str) or not (isinstance(user_id, str) or isinstance(name, str)):
        raise Unauthorized("The request you have made requires authentication.")
    scope = _object(body, "scope", "auth.scope")
    project = _object(scope, "project", "auth.scope.project")
    for key in ("name", "id"):
        if project.get(key) is not None and not isinstance(project[key], str):
            raise InvalidInput(f"auth.scope.project.{key}", project[key], "a string")
    # keystone/auth/schema.py: a scope names one of project, domain, system.
    system = _object(scope, "system", "auth.scope.system")
    if system and system != {"all": True}:
        raise InvalidInput("auth.scope.system", system, '{"all": true}')
    if "domain" in scope:
        raise Unauthorized(
            "qosplane has no domain-scoped tokens; scope to a project or the system."
        )
    with services.db.transaction() as s:
        user_row, project_row, roles = IdentityRepository(s).authenticate(
            user_id if isinstance(user_id, str) else None,
            name if isinstance(name, str) else None,
            password,
            project.get("name"),
            project.get("id"),
            system=bool(system),
        )
        return Context(
            user_row.id,
            user_row.name,
            project_row.id if project_row is not None else "",
            project_row.name if project_row is not None else "",
            roles,
            utcnow() + TOKEN_LIFETIME,
            system=project_row is None and bool(system),
        )


def _token_body(request: Request, ctx: Context) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": ["password"],
        "user": {"id": ctx.user_id, "name": ctx.user_name, "domain": DOMAIN},
        "roles": [{"id": r, "name": r} for r in ctx.roles],
        "issued_at": ctx.issued_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "expires_at": ctx.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "audit_ids": [ctx.audit_id],
        "catalog": catalog(request, ctx.project_id),
    }
    if ctx.system:
        body["system"] = {"all": True}
    elif not ctx.project_id:
        # Unscoped (keystone/models/token_model.py): no roles, no catalog.
        del body["roles"], body["catalog"]
    else:
        body["project"] = {"id": ctx.project_id, "name": ctx.project_name, "domain": DOMAIN}
        body["is_domain"] = False
    return body


async def issue_token(request: Request, services: Services) -> Response:
    ctx = _authenticate(await json_body(request, "auth"), services)
    return ok(
        {"token": _token_body(request, ctx)},
        status=201,
        headers={"X-Subject-Token": services.signer.issue(ctx)},
    )


def _subject(request: Request, services: Services) -> tuple[Context, Context]:
    """The caller and the token named by X-Subject-Token; a subject that is not a valid
    token is 404, as Keystone says "Could not find token" (keystone/api/auth.py)."""
    caller = context(request, services)
    raw = request.headers.get("x-subject-token")
    try:
        subject = standing(services, raw)
    except Unauthorized:
        raise NotFound("Token", (raw or "")[:16] + "...") from None
    # identity:validate_token / revoke_token: admin_required or token_subject
    # (keystone/common/policies/token.py).
    if subject.user_id != caller.user_id:
        authorize(services, caller, "identity:validate_token")
    return caller, subject


async def validate_token(request: Request, services: Services) -> Response:
    _, subject = _subject(request, services)
    token = request.headers["x-subject-token"]
    if request.method == "HEAD":
        return empty(200)
    return ok({"token": _token_body(request, subject)}, headers={"X-Subject-Token": token})


async def revoke_token(request: Request, services: Services) -> Response:
    _, subject = _subject(request, services)
    now = utcnow()
    with services.db.transaction() as s:
        IdentityRepository(s).revoke_token(
            subject.audit_id, subject.expires_at.timestamp(), now.timestamp()
        )
    return empty(204)


# The attributes Keystone knows (keystone/resource/schema.py, keystone/identity/schema.py);
# any other in a body is kept in `extra` and shown back, as Keystone does.
PROJECT_ATTRIBUTES = (
    "id",
    "name",
    "description",
    "enabled",
    "domain_id",
    "parent_id",
    "is_domain",
    "tags",
    "options",
    "links",
)
USER_ATTRIBUTES = (
    "id",
    "name",
    "password",
    "enabled",
    "domain_id",
    "default_project_id",
    "description",
    "email",
    "options",
    "federated",
    "links",
    "password_expires_at",
)


def _extra(body: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in known}


def _tags(body: dict[str, Any]) -> tuple[str, ...] | None:
    """keystone/common/validation/parameter_types.py tags: at most 80 unique strings of 1
    to 255 characters, without '/' or ','."""
    if "tags" not in body:
        return None
    tags = body["tags"]
    if (
        not isinstance(tags, list)
        or len(tags) > 80
        or len(set(map(str, tags))) != len(tags)
        or not all(
            isinstance(t, str) and 1 <= len(t) <= 255 and "/" not in t and "," not in t
            for t in tags
        )
    ):
        raise InvalidInput(
            "project.tags", tags, "at most 80 unique strings of 1 to 255 characters, no / or ,"
        )
    return tuple(tags)


def project_json(row: ProjectView) -> dict[str, Any]:
    extra: dict[str, Any] = json.loads(row.extra_json)
    return extra | {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "domain_id": "default",
        "parent_id": "default",
        "is_domain": False,
        "tags": json.loads(row.tags_json),
        "options": {},
        "links": {"self": f"/identity/v3/projects/{row.id}"},
    }


def user_json(row: UserView) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(row.extra_json) | {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "domain_id": "default",
        "default_project_id": row.default_project_id,
        "description": row.description,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"/identity/v3/users/{row.id}"},
    }
    if row.email is not None:
        out["email"] = row.email
    return out


def role_json(row: RoleView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "domain_id": row.domain_id,
        "description": row.description or None,
        "options": {},
        "links": {"self": f"/identity/v3/roles/{row.id}"},
    }


def _text(body: dict[str, Any], key: str, path: str, longest: int, shortest: int = 0) -> str | None:
    """`body[key]` as text of `shortest`..`longest` characters, None when absent."""
    value = body.get(key)
    if value is None and key not in body:
        return None
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        raise InvalidInput(path, value, f"a string of {shortest} to {longest} characters")
    return value


def _flag(body: dict[str, Any], key: str, path: str) -> bool | None:
    """Keystone's `parameter_types.boolean`: JSON true or false only."""
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, bool):
        raise InvalidInput(path, value, "true or false")
    return value


def _domain(body: dict[str, Any], path: str) -> None:
    """qosplane has the one domain, `default`; any other named is 404, as in Keystone."""
    domain = body.get("domain_id")
    if domain is not None and domain != "default":
        raise NotFound("Domain", str(domain))


def _only_tags_known(body: dict[str, Any], path: str) -> None:
    if body.get("is_domain") is True:
        raise InvalidInput(f"{path}.is_domain", True, "false: qosplane has the one domain")
    if body.get("parent_id") not in (None, "default"):
        raise InvalidInput(f"{path}.parent_id", body["parent_id"], "default (no project tree)")


async def list_projects(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_projects")
    q = request.query_params
    enabled = None if "enabled" not in q else q["enabled"].lower() not in ("0", "false", "no")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).projects(q.get("name"), enabled)
        return ok({"projects": [project_json(r) for r in rows], "links": {}})


async def create_project(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:create_project")
    body = await json_body(request, "project")
    name = _text(body, "name", "project.name", 64, 1)
    if name is None:
        raise InvalidInput("project.name", None, "a string of 1 to 64 characters", "required")
    description = _text(body, "description", "project.description", 255) or ""
    enabled = _flag(body, "enabled", "project.enabled")
    _domain(body, "project")
    _only_tags_known(body, "project")
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_project(
            name,
            description,
            enabled=True if enabled is None else enabled,
            tags=_tags(body) or (),
            extra=_extra(body, PROJECT_ATTRIBUTES),
        )
        return ok({"project": project_json(row)}, status=201)


async def show_project(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["project_id"]
    if ref != ctx.project_id:
        authorize(services, ctx, "identity:get_project")
    with services.db.transaction() as s:
        return ok({"project": project_json(IdentityRepository(s).project(ref))})


async def update_project(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_project")
    body = await json_body(request, "project")
    name = _text(body, "name", "project.name", 64, 1)
    description = _text(body, "description", "project.description", 255)
    enabled = _flag(body, "enabled", "project.enabled")
    _domain(body, "project")
    with services.db.transaction() as s:
        row = IdentityRepository(s).update_project(
            request.path_params["project_id"],
            name,
            description,
            enabled,
            tags=_tags(body),
            extra=_extra(body, PROJECT_ATTRIBUTES),
        )
        return ok({"project": project_json(row)})


async def delete_project(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_project")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_project(request.path_params["project_id"])
    return empty(204)


async def list_users(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_users")
    q = request.query_params
    enabled = None if "enabled" not in q else q["enabled"].lower() not in ("0", "false", "no")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).users(q.get("name"), enabled)
        return ok({"users": [user_json(r) for r in rows], "links": {}})


def _optional_ref(body: dict[str, Any], key: str, path: str) -> str | Unset | None:
    if key not in body:
        return UNSET
    value = body[key]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(path, value, "an id or null")
    return value


async def create_user(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:create_user")
    body = await json_body(request, "user")
    name = _text(body, "name", "user.name", 255, 1)
    if name is None:
        raise InvalidInput("user.name", None, "a string of 1 to 255 characters", "required")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("user.password", password, "a string or null")
    project = _optional_ref(body, "default_project_id", "user.default_project_id")
    enabled = _flag(body, "enabled", "user.enabled")
    description = _text(body, "description", "user.description", 255)
    email = _text(body, "email", "user.email", 255)
    _domain(body, "user")
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_user(
            name,
            password,
            project if isinstance(project, str) else None,
            enabled=True if enabled is None else enabled,
            description=description or "",
            email=email,
            extra=_extra(body, USER_ATTRIBUTES),
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
    email = _text(body, "email", "user.email", 255) if body.get("email") is not None else None
    with services.db.transaction() as s:
        row = IdentityRepository(s).update_user(
            request.path_params["user_id"],
            utcnow().timestamp(),
            name=_text(body, "name", "user.name", 255, 1),
            password=password,
            enabled=_flag(body, "enabled", "user.enabled"),
            description=_text(body, "description", "user.description", 255),
            email=email if "email" in body else UNSET,
            default_project_id=_optional_ref(body, "default_project_id", "user.default_project_id"),
            extra=_extra(body, USER_ATTRIBUTES),
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
        IdentityRepository(s).change_password(ref, original, new, utcnow().timestamp())
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
        rows = repo.projects(ids=ids)
        return ok({"projects": [project_json(r) for r in rows], "links": {}})


async def list_roles(request: Request, services: Services) -> Response:
    # identity:list_roles is ADMIN_OR_SYSTEM_READER (keystone/common/policies/role.py).
    authorize(services, context(request, services), "identity:list_roles")
    q = request.query_params
    with services.db.transaction() as s:
        rows = IdentityRepository(s).roles(q.get("name"), q.get("domain_id"))
        return ok({"roles": [role_json(r) for r in rows], "links": {}})


async def show_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:get_role")
    with services.db.transaction() as s:
        return ok({"role": role_json(IdentityRepository(s).role(request.path_params["role_id"]))})


async def create_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:create_role")
    body = await json_body(request, "role")
    name = _text(body, "name", "role.name", 255, 1)
    if name is None:
        raise InvalidInput("role.name", None, "a string of 1 to 255 characters", "required")
    domain = body.get("domain_id")
    if domain is not None and not isinstance(domain, str):
        raise InvalidInput("role.domain_id", domain, "a domain id or null")
    if domain is not None and domain != "default":
        raise NotFound("Domain", domain)
    description = _text(body, "description", "role.description", 255) or ""
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_role(name, description, domain)
        return ok({"role": role_json(row)}, status=201)


async def update_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_role")
    body = await json_body(request, "role")
    with services.db.transaction() as s:
        row = IdentityRepository(s).update_role(
            request.path_params["role_id"],
            _text(body, "name", "role.name", 255, 1),
            _text(body, "description", "role.description", 255),
        )
        return ok({"role": role_json(row)})


async def delete_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_role")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_role(request.path_params["role_id"])
    return empty(204)


def _role_ref(row: RoleView) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "links": {"self": f"/identity/v3/roles/{row.id}"}}


async def implied_role(request: Request, services: Services) -> Response:
    """PUT (create, 201), GET (show), HEAD (check, 204), DELETE (204) of one inference rule
    (keystone/api/roles.py RoleImplicationResource)."""
    ctx = context(request, services)
    prior, implied = request.path_params["prior_role_id"], request.path_params["implied_role_id"]
    if request.method not in {"GET", "HEAD"}:
        authorize(services, ctx, "identity:create_implied_role")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if request.method == "DELETE":
            repo.unimply(prior, implied)
            return empty(204)
        if request.method == "PUT":
            repo.imply(prior, implied)
        else:
            repo.implication(prior, implied)
        if request.method == "HEAD":
            return empty(204)
        body = {
            "role_inference": {
                "prior_role": _role_ref(repo.role(prior)),
                "implies": _role_ref(repo.role(implied)),
            },
            "links": {"self": f"/identity/v3/roles/{prior}/implies/{implied}"},
        }
        return ok(body, status=201 if request.method == "PUT" else 200)


def _inferences(repo: IdentityRepository, prior: str | None) -> list[dict[str, Any]]:
    grouped: dict[str, list[str]] = {}
    for row in repo.implications(prior):
        grouped.setdefault(row.prior_role_id, []).append(row.implied_role_id)
    return [
        {
            "prior_role": _role_ref(repo.role(p)),
            "implies": [_role_ref(repo.role(i)) for i in implied],
        }
        for p, implied in grouped.items()
    ]


async def list_implied_roles(request: Request, services: Services) -> Response:
    context(request, services)
    prior = request.path_params["prior_role_id"]
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        found = _inferences(repo, prior)
        inference = (
            found[0] if found else {"prior_role": _role_ref(repo.role(prior)), "implies": []}
        )
        return ok(
            {"role_inference": inference, "links": {"self": f"/identity/v3/roles/{prior}/implies"}}
        )


async def list_role_inferences(request: Request, services: Services) -> Response:
    context(request, services)
    with services.db.transaction() as s:
        return ok(
            {
                "role_inferences": _inferences(IdentityRepository(s), None),
                "links": {"self": "/identity/v3/role_inferences"},
            }
        )


async def grant_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:create_grant")
    p = request.path_params
    with services.db.transaction() as s:
        IdentityRepository(s).grant(p["user_id"], p["project_id"], p["role_id"])
    return empty(204)


async def check_or_revoke_role(request: Request, services: Services) -> Response:
    """HEAD/GET check a grant (204 or 404); DELETE removes it, and the user's tokens on the
    project lose the role at the next request."""
    ctx = context(request, services)
    p = request.path_params
    authorize(
        services,
        ctx,
        "identity:revoke_grant" if request.method == "DELETE" else "identity:check_grant",
    )
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if request.method == "DELETE":
            repo.revoke(p["user_id"], p["project_id"], p["role_id"])
        else:
            repo.assignment(p["user_id"], p["project_id"], p["role_id"])
    return empty(204)


async def list_grants(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    p = request.path_params
    if p["user_id"] != ctx.user_id:
        authorize(services, ctx, "identity:list_grants")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        repo.user(p["user_id"])
        repo.project(p["project_id"])
        rows = repo.direct_roles(p["user_id"], p["project_id"])
        return ok(
            {
                "roles": [role_json(r) for r in rows],
                "links": {
                    "self": f"/identity/v3/projects/{p['project_id']}/users/{p['user_id']}/roles"
                },
            }
        )


async def system_grant(request: Request, services: Services) -> Response:
    """PUT (grant), GET/HEAD (check), DELETE (revoke) of a role on the system
    (keystone/api/system.py); grants and revocations are the admin's."""
    ctx = context(request, services)
    p = request.path_params
    if request.method in ("PUT", "DELETE"):
        authorize(services, ctx, "identity:create_system_grant_for_user")
    else:
        authorize(services, ctx, "identity:check_system_grant_for_user")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if request.method == "PUT":
            repo.grant_system(p["user_id"], p["role_id"])
        elif request.method == "DELETE":
            repo.revoke_system(p["user_id"], p["role_id"])
        else:
            repo.system_assignment(p["user_id"], p["role_id"])
    return empty(204)


async def list_system_grants(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        authorize(services, ctx, "identity:list_system_grants_for_user")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        repo.user(ref)
        rows = repo.direct_system_roles(ref)
        return ok(
            {
                "roles": [role_json(r) for r in rows],
                "links": {"self": f"/identity/v3/system/users/{ref}/roles"},
            }
        )


async def list_assignments(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_role_assignments")
    q = request.query_params
    # include_names (`role assignment list --names`) adds the names the client prints.
    names = "include_names" in q and q["include_names"].lower() in ("", "1", "true")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        out = []
        rows = repo.assignments(q.get("user.id"), q.get("scope.project.id"), q.get("role.id"))
        for r in rows:
            user: dict[str, Any] = {"id": r.user_id}
            project: dict[str, Any] = {"id": r.project_id}
            role: dict[str, Any] = {"id": r.role}
            if names:
                user |= {"name": repo.user(r.user_id).name, "domain": DOMAIN}
                project |= {"name": repo.project(r.project_id).name, "domain": DOMAIN}
                role |= {"name": repo.role(r.role).name}
            link = f"/identity/v3/projects/{r.project_id}/users/{r.user_id}/roles/{r.role}"
            out.append(
                {
                    "role": role,
                    "user": user,
                    "scope": {"project": project},
                    "links": {"assignment": link},
                }
            )
        if "scope.project.id" not in q:
            for sa in repo.system_assignments(q.get("user.id")):
                if q.get("role.id") not in (None, sa.role):
                    continue
                role = {"id": sa.role} | ({"name": repo.role(sa.role).name} if names else {})
                link = f"/identity/v3/system/users/{sa.user_id}/roles/{sa.role}"
                out.append(
                    {
                        "role": role,
                        "user": {"id": sa.user_id},
                        "scope": {"system": {"all": True}},
                        "links": {"assignment": link},
                    }
                )
    return ok({"role_assignments": out, "links": {}})


async def show_domain(request: Request, services: Services) -> Response:
    context(request, services)
    ref = request.path_params["domain_id"]
    if ref not in ("default", "Default"):
        raise NotFound("Domain", ref)
    return ok(
        {
            "domain": {
                **DOMAIN,
                "enabled": True,
                "description": "",
                "tags": [],
                "options": {},
                "links": {"self": "/identity/v3/domains/default"},
            }
        }
    )


async def list_domains(request: Request, services: Services) -> Response:
    context(request, services)
    name = request.query_params.get("name")
    match = name is None or name in ("Default", "default")
    return ok({"domains": [{**DOMAIN, "enabled": True}] if match else [], "links": {}})


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("identity", services, handler)

    return [
        Route("/identity", w(versions), methods=["GET"]),
        Route("/identity/", w(versions), methods=["GET"]),
        Route("/identity/v3", w(version), methods=["GET"]),
        Route("/identity/v3/", w(version), methods=["GET"]),
        Route("/identity/v3/auth/tokens", w(issue_token), methods=["POST"]),
        Route("/identity/v3/auth/tokens", w(validate_token), methods=["GET", "HEAD"]),
        Route("/identity/v3/auth/tokens", w(revoke_token), methods=["DELETE"]),
        Route("/identity/v3/projects", w(list_projects), methods=["GET"]),
        Route("/identity/v3/projects", w(create_project), methods=["POST"]),
        Route("/identity/v3/projects/{project_id}", w(show_project), methods=["GET"]),
        Route("/identity/v3/projects/{project_id}", w(update_project), methods=["PATCH"]),
        Route("/identity/v3/projects/{project_id}", w(delete_project), methods=["DELETE"]),
        Route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles",
            w(list_grants),
            methods=["GET"],
        ),
        Route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            w(grant_role),
            methods=["PUT"],
        ),
        Route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            w(check_or_revoke_role),
            methods=["GET", "HEAD", "DELETE"],
        ),
        Route("/identity/v3/system/users/{user_id}/roles", w(list_system_grants), methods=["GET"]),
        Route(
            "/identity/v3/system/users/{user_id}/roles/{role_id}",
            w(system_grant),
            methods=["PUT", "GET", "HEAD", "DELETE"],
        ),
        Route("/identity/v3/users", w(list_users), methods=["GET"]),
        Route("/identity/v3/users", w(create_user), methods=["POST"]),
        Route("/identity/v3/users/{user_id}", w(show_user), methods=["GET"]),
        Route("/identity/v3/users/{user_id}", w(update_user), methods=["PATCH"]),
        Route("/identity/v3/users/{user_id}", w(delete_user), methods=["DELETE"]),
        Route("/identity/v3/users/{user_id}/password", w(change_password), methods=["POST"]),
        Route("/identity/v3/users/{user_id}/projects", w(list_user_projects), methods=["GET"]),
        Route("/identity/v3/roles", w(list_roles), methods=["GET"]),
        Route("/identity/v3/roles", w(create_role), methods=["POST"]),
        Route("/identity/v3/roles/{role_id}", w(show_role), methods=["GET"]),
        Route("/identity/v3/roles/{role_id}", w(update_role), methods=["PATCH"]),
        Route("/identity/v3/roles/{role_id}", w(delete_role), methods=["DELETE"]),
        Route(
            "/identity/v3/roles/{prior_role_id}/implies",
            w(list_implied_roles),
            methods=["GET"],
        ),
        Route(
            "/identity/v3/roles/{prior_role_id}/implies/{implied_role_id}",
            w(implied_role),
            methods=["PUT", "GET", "HEAD", "DELETE"],
        ),
        Route("/identity/v3/role_inferences", w(list_role_inferences), methods=["GET"]),
        Route("/identity/v3/role_assignments", w(list_assignments), methods=["GET"]),
        Route("/identity/v3/domains", w(list_domains), methods=["GET"]),
        Route("/identity/v3/domains/{domain_id}", w(show_domain), methods=["GET"]),
    ]
