"""Keystone v3 subset: version documents and password authentication with a catalog."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import TOKEN_LIFETIME, Context, utcnow
from qosplane.api.common import Services, base_url, context, empty, json_body, ok, wrap
from qosplane.model.errors import InvalidInput, NotFound, Unauthorized
from qosplane.store.identity import ROLES, IdentityRepository
from qosplane.store.views import ProjectView, UserView

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
    project = _object(_object(body, "scope", "auth.scope"), "project", "auth.scope.project")
    for key in ("name", "id"):
        if project.get(key) is not None and not isinstance(project[key], str):
            raise InvalidInput(f"auth.scope.project.{key}", project[key], "a string")
    with services.db.transaction() as s:
        user_row, project_row, roles = IdentityRepository(s).authenticate(
            user_id if isinstance(user_id, str) else None,
            name if isinstance(name, str) else None,
            password,
            project.get("name"),
            project.get("id"),
        )
        return Context(
            user_row.id,
            user_row.name,
            project_row.id,
            project_row.name,
            roles,
            utcnow() + TOKEN_LIFETIME,
        )


async def issue_token(request: Request, services: Services) -> Response:
    ctx = _authenticate(await json_body(request, "auth"), services)
    domain = DOMAIN
    token = {
        "methods": ["password"],
        "user": {"id": ctx.user_id, "name": ctx.user_name, "domain": domain},
        "project": {"id": ctx.project_id, "name": ctx.project_name, "domain": domain},
        "roles": [{"id": r, "name": r} for r in ctx.roles],
        "issued_at": utcnow().strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "expires_at": ctx.expires_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "audit_ids": [],
        "catalog": catalog(request, ctx.project_id),
    }
    return ok({"token": token}, status=201, headers={"X-Subject-Token": services.signer.issue(ctx)})


def project_json(row: ProjectView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "domain_id": "default",
        "parent_id": "default",
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": f"/identity/v3/projects/{row.id}"},
    }


def user_json(row: UserView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "domain_id": "default",
        "default_project_id": row.default_project_id,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"/identity/v3/users/{row.id}"},
    }


def role_json(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "domain_id": None,
        "description": None,
        "options": {},
        "links": {"self": f"/identity/v3/roles/{name}"},
    }


async def list_projects(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:list_projects")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).projects(request.query_params.get("name"))
        return ok({"projects": [project_json(r) for r in rows], "links": {}})


async def create_project(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:create_project")
    body = await json_body(request, "project")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise InvalidInput("project.name", name, "a string of 1 to 64 characters")
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > 255:
        raise InvalidInput("project.description", description, "a string of at most 255 characters")
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_project(name, description)
        return ok({"project": project_json(row)}, status=201)


async def show_project(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["project_id"]
    if ref != ctx.project_id:
        ctx.require_admin("identity:get_project")
    with services.db.transaction() as s:
        return ok({"project": project_json(IdentityRepository(s).project(ref))})


async def list_users(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:list_users")
    with services.db.transaction() as s:
        rows = IdentityRepository(s).users(request.query_params.get("name"))
        return ok({"users": [user_json(r) for r in rows], "links": {}})


async def create_user(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:create_user")
    body = await json_body(request, "user")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InvalidInput("user.name", name, "a string of 1 to 255 characters")
    password = body.get("password")
    if not isinstance(password, str):
        raise InvalidInput("user.password", password, "a non-empty password", "required")
    project = body.get("default_project_id")
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_user(
            name, password, project if isinstance(project, str) else None
        )
        return ok({"user": user_json(row)}, status=201)


async def show_user(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["user_id"]
    if ref != ctx.user_id:
        ctx.require_admin("identity:get_user")
    with services.db.transaction() as s:
        return ok({"user": user_json(IdentityRepository(s).user(ref))})


async def list_roles(request: Request, services: Services) -> Response:
    context(request, services)
    name = request.query_params.get("name")
    return ok({"roles": [role_json(r) for r in ROLES if name is None or r == name], "links": {}})


async def show_role(request: Request, services: Services) -> Response:
    context(request, services)
    role = request.path_params["role_id"]
    if role not in ROLES:
        raise NotFound("Role", role)
    return ok({"role": role_json(role)})


async def grant_role(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:create_grant")
    p = request.path_params
    with services.db.transaction() as s:
        IdentityRepository(s).grant(p["user_id"], p["project_id"], p["role_id"])
    return empty(204)


async def list_assignments(request: Request, services: Services) -> Response:
    context(request, services).require_admin("identity:list_role_assignments")
    # include_names (`role assignment list --names`) adds the names the client prints.
    names = "include_names" in request.query_params and request.query_params[
        "include_names"
    ].lower() in ("", "1", "true")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        out = []
        for r in repo.assignments():
            user: dict[str, Any] = {"id": r.user_id}
            project: dict[str, Any] = {"id": r.project_id}
            role: dict[str, Any] = {"id": r.role}
            if names:
                user |= {"name": repo.user(r.user_id).name, "domain": DOMAIN}
                project |= {"name": repo.project(r.project_id).name, "domain": DOMAIN}
                role |= {"name": r.role}
            link = f"/identity/v3/projects/{r.project_id}/users/{r.user_id}/roles/{r.role}"
            out.append(
                {
                    "role": role,
                    "user": user,
                    "scope": {"project": project},
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
        Route("/identity/v3/projects", w(list_projects), methods=["GET"]),
        Route("/identity/v3/projects", w(create_project), methods=["POST"]),
        Route("/identity/v3/projects/{project_id}", w(show_project), methods=["GET"]),
        Route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            w(grant_role),
            methods=["PUT"],
        ),
        Route("/identity/v3/users", w(list_users), methods=["GET"]),
        Route("/identity/v3/users", w(create_user), methods=["POST"]),
        Route("/identity/v3/users/{user_id}", w(show_user), methods=["GET"]),
        Route("/identity/v3/roles", w(list_roles), methods=["GET"]),
        Route("/identity/v3/roles/{role_id}", w(show_role), methods=["GET"]),
        Route("/identity/v3/role_assignments", w(list_assignments), methods=["GET"]),
        Route("/identity/v3/domains", w(list_domains), methods=["GET"]),
        Route("/identity/v3/domains/{domain_id}", w(show_domain), methods=["GET"]),
    ]
