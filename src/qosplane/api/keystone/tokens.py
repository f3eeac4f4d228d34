"""Keystone's version documents and tokens: issue (password), validate, revoke
(keystone/api/auth.py, keystone/auth/schema.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

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
)
from qosplane.api.keystone.bodies import json_object
from qosplane.model.errors import InvalidInput, NotFound, Unauthorized
from qosplane.store.identity import IdentityRepository


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


def _authenticate(body: dict[str, Any], services: Services) -> Context:
    identity = json_object(body, "identity", "auth.identity")
    methods = identity.get("methods") or []
    if not isinstance(methods, list) or "password" not in methods:
        raise Unauthorized("The request you have made requires authentication.")
    user = json_object(
        json_object(identity, "password", "auth.identity.password"),
        "user",
        "auth.identity.password.user",
    )
    # Keystone identifies a password user by id, or by name within a domain
    # (keystone/auth/plugins/core.py, UserAuthInfo); tempest's dynamic credentials use ids.
    user_id, name, password = user.get("id"), user.get("name"), user.get("password")
    if not isinstance(password, str) or not (isinstance(user_id, str) or isinstance(name, str)):
        raise Unauthorized("The request you have made requires authentication.")
    scope = json_object(body, "scope", "auth.scope")
    project = json_object(scope, "project", "auth.scope.project")
    for key in ("name", "id"):
        if project.get(key) is not None and not isinstance(project[key], str):
            raise InvalidInput(f"auth.scope.project.{key}", project[key], "a string")
    # keystone/auth/schema.py: a scope names one of project, domain, system.
    system = json_object(scope, "system", "auth.scope.system")
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
            user_domain=_domain_ref(user, "auth.identity.password.user.domain"),
            project_domain=_domain_ref(project, "auth.scope.project.domain"),
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


def _domain_ref(parent: dict[str, Any], path: str) -> tuple[str | None, str | None]:
    """The (id, name) of the domain a user or project reference names, either may be None."""
    domain = json_object(parent, "domain", path)
    for key in ("id", "name"):
        if domain.get(key) is not None and not isinstance(domain[key], str):
            raise InvalidInput(f"{path}.{key}", domain[key], "a string")
    return domain.get("id"), domain.get("name")


def _domain_of(repo: IdentityRepository, domain_id: str) -> dict[str, str]:
    return {"id": domain_id, "name": repo.domain(domain_id).name}


def _token_body(request: Request, ctx: Context, services: Services) -> dict[str, Any]:
    """keystone/models/token_model.py's view: the user and project with their domains,
    and the roles by id and name (a token's roles are global roles, unique by name)."""
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        user = repo.user(ctx.user_id)
        ids = {r.name: r.id for r in repo.roles()}
        body: dict[str, Any] = {
            "methods": ["password"],
            "user": {
                "id": ctx.user_id,
                "name": ctx.user_name,
                "domain": _domain_of(repo, user.domain_id),
                "password_expires_at": None,
            },
            "roles": [{"id": ids.get(r, r), "name": r} for r in ctx.roles],
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
            project = repo.project(ctx.project_id)
            body["project"] = {
                "id": ctx.project_id,
                "name": ctx.project_name,
                "domain": _domain_of(repo, project.domain_id),
            }
            body["is_domain"] = False
    return body


async def issue_token(request: Request, services: Services) -> Response:
    ctx = _authenticate(await json_body(request, "auth"), services)
    return ok(
        {"token": _token_body(request, ctx, services)},
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
    return ok(
        {"token": _token_body(request, subject, services)}, headers={"X-Subject-Token": token}
    )


async def revoke_token(request: Request, services: Services) -> Response:
    _, subject = _subject(request, services)
    now = utcnow()
    with services.db.transaction() as s:
        IdentityRepository(s).revoke_token(
            subject.audit_id, subject.expires_at.timestamp(), now.timestamp()
        )
    return empty(204)
