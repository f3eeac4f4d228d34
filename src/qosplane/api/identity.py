"""Keystone v3 subset: version documents and password authentication with a catalog."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import TOKEN_LIFETIME, Context, utcnow
from qosplane.api.common import Services, base_url, json_body, ok, wrap
from qosplane.model.errors import Unauthorized

ADMIN = "admin"


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


def _authenticate(body: dict[str, Any], services: Services) -> Context:
    identity = body.get("identity") or {}
    if "password" not in (identity.get("methods") or []):
        raise Unauthorized("The request you have made requires authentication.")
    user = ((identity.get("password") or {}).get("user")) or {}
    name, password = user.get("name"), user.get("password")
    if name != ADMIN or password != services.admin.password:
        raise Unauthorized("The request you have made requires authentication.")
    project = ((body.get("scope") or {}).get("project")) or {}
    if (
        project
        and project.get("name", ADMIN) != ADMIN
        and project.get("id") != services.admin.project_id
    ):
        raise Unauthorized(f"User {name} has no access to project {project}.")
    return Context(
        services.admin.user_id,
        ADMIN,
        services.admin.project_id,
        ADMIN,
        ("admin", "member", "reader"),
        utcnow() + TOKEN_LIFETIME,
    )


async def issue_token(request: Request, services: Services) -> Response:
    ctx = _authenticate(await json_body(request, "auth"), services)
    domain = {"id": "default", "name": "Default"}
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


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("identity", services, handler)

    return [
        Route("/identity", w(versions), methods=["GET"]),
        Route("/identity/", w(versions), methods=["GET"]),
        Route("/identity/v3", w(version), methods=["GET"]),
        Route("/identity/v3/", w(version), methods=["GET"]),
        Route("/identity/v3/auth/tokens", w(issue_token), methods=["POST"]),
    ]
