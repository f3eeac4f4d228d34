"""Keystone's resource API: domains and projects, a project tree under each domain
(keystone/api/domains.py, keystone/api/projects.py, keystone/resource/core.py). A domain is
a project acting as one: both APIs show it, each in its own shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from qosplane.api.auth import Context
from qosplane.api.common import Services, authorize, context, empty, json_body, ok
from qosplane.api.keystone.bodies import (
    DOMAIN_ATTRIBUTES,
    PROJECT_ATTRIBUTES,
    domain_json,
    extra_attributes,
    flag,
    optional_ref,
    project_json,
    query_flag,
    required_name,
    tags,
    text,
)
from qosplane.model.errors import InvalidInput
from qosplane.store.identity import DEFAULT_DOMAIN, IdentityRepository


def caller_domain(repo: IdentityRepository, ctx: Context) -> str:
    """Keystone puts a new project or user without a domain in the domain of the caller's
    project (keystone/api/projects.py _normalize_domain_id), else the default domain."""
    if ctx.project_id:
        return repo.project(ctx.project_id).domain_id
    return DEFAULT_DOMAIN


async def list_projects(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_projects")
    q = request.query_params
    with services.db.transaction() as s:
        rows = IdentityRepository(s).projects(
            q.get("name"),
            query_flag(q, "enabled"),
            domain_id=q.get("domain_id"),
            parent_id=q.get("parent_id"),
            is_domain=bool(query_flag(q, "is_domain")),
        )
        return ok({"projects": [project_json(r) for r in rows], "links": {}})


async def create_project(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    authorize(services, ctx, "identity:create_project")
    body = await json_body(request, "project")
    name = required_name(body, "project", 64)
    description = text(body, "description", "project.description", 255) or ""
    enabled = flag(body, "enabled", "project.enabled")
    is_domain = flag(body, "is_domain", "project.is_domain")
    domain_id = optional_ref(body, "domain_id", "project.domain_id")
    parent_id = optional_ref(body, "parent_id", "project.parent_id")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        common: dict[str, Any] = {
            "enabled": True if enabled is None else enabled,
            "tags": tags(body, "project") or (),
            "extra": extra_attributes(body, PROJECT_ATTRIBUTES),
        }
        if is_domain:
            # keystone/resource/core.py _assert_is_domain_project_constraints: a project
            # acting as a domain sits at the top, under no domain and no parent.
            for key, value in (("domain_id", domain_id), ("parent_id", parent_id)):
                if isinstance(value, str):
                    raise InvalidInput(
                        f"project.{key}", value, "null for a project acting as a domain"
                    )
            row = repo.create_domain(name, description, **common)
        else:
            if isinstance(domain_id, str):
                domain = domain_id
            elif isinstance(parent_id, str):
                parent = repo.project(parent_id)
                domain = parent.id if parent.is_domain else parent.domain_id
            else:
                domain = caller_domain(repo, ctx)
            row = repo.create_project(
                name,
                description,
                domain_id=domain,
                parent_id=parent_id if isinstance(parent_id, str) else None,
                **common,
            )
        return ok({"project": project_json(row)}, status=201)


async def show_project(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ref = request.path_params["project_id"]
    if ref != ctx.project_id:
        authorize(services, ctx, "identity:get_project")
    with services.db.transaction() as s:
        return ok({"project": project_json(IdentityRepository(s).project(ref))})


def _unchanged(body: dict[str, Any], key: str, now: object, path: str) -> None:
    """keystone/resource/core.py update_project: domain_id, parent_id and is_domain are
    fixed once a project exists (400)."""
    if key in body and body[key] != now:
        raise InvalidInput(f"{path}.{key}", body[key], f"unchanged ({now})")


async def update_project(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_project")
    body = await json_body(request, "project")
    name = text(body, "name", "project.name", 64, 1)
    description = text(body, "description", "project.description", 255)
    enabled = flag(body, "enabled", "project.enabled")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        current = repo.project(request.path_params["project_id"])
        _unchanged(body, "domain_id", None if current.is_domain else current.domain_id, "project")
        _unchanged(body, "parent_id", current.parent_id, "project")
        _unchanged(body, "is_domain", current.is_domain, "project")
        row = repo.update_project(
            current.id,
            name,
            description,
            enabled,
            tags=tags(body, "project"),
            extra=extra_attributes(body, PROJECT_ATTRIBUTES),
        )
        return ok({"project": project_json(row)})


async def delete_project(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_project")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_project(request.path_params["project_id"])
    return empty(204)


async def list_domains(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_domains")
    q = request.query_params
    with services.db.transaction() as s:
        rows = IdentityRepository(s).domains(q.get("name"), query_flag(q, "enabled"))
        return ok({"domains": [domain_json(r) for r in rows], "links": {}})


async def create_domain(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:create_domain")
    body = await json_body(request, "domain")
    name = required_name(body, "domain", 64)
    enabled = flag(body, "enabled", "domain.enabled")
    with services.db.transaction() as s:
        row = IdentityRepository(s).create_domain(
            name,
            text(body, "description", "domain.description", 255) or "",
            enabled=True if enabled is None else enabled,
            tags=tags(body, "domain") or (),
            extra=extra_attributes(body, DOMAIN_ATTRIBUTES),
        )
        return ok({"domain": domain_json(row)}, status=201)


async def show_domain(request: Request, services: Services) -> Response:
    """identity:get_domain is admin, system reader, or a token whose project is in the
    domain (keystone/common/policies/domain.py: token.project.domain.id)."""
    ctx = context(request, services)
    ref = request.path_params["domain_id"]
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        own = bool(ctx.project_id) and caller_domain(repo, ctx) == ref
        if not own:
            authorize(services, ctx, "identity:get_domain")
        return ok({"domain": domain_json(repo.domain(ref))})


async def update_domain(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_domain")
    body = await json_body(request, "domain")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        ref = repo.domain(request.path_params["domain_id"]).id
        row = repo.update_project(
            ref,
            text(body, "name", "domain.name", 64, 1),
            text(body, "description", "domain.description", 255),
            flag(body, "enabled", "domain.enabled"),
            tags=tags(body, "domain"),
            extra=extra_attributes(body, DOMAIN_ATTRIBUTES),
        )
        return ok({"domain": domain_json(row)})


async def delete_domain(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_domain")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_domain(request.path_params["domain_id"])
    return empty(204)
