"""Keystone's assignment API: roles (global and domain-specific) with implied roles, and
role grants to users and groups on projects, domains and the system
(keystone/api/roles.py, role_inferences.py, role_assignments.py, system.py,
keystone/assignment/core.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from qosplane.api.common import Services, authorize, context, empty, json_body, ok
from qosplane.api.keystone.bodies import query_flag, required_name, role_json, role_ref, text
from qosplane.model.errors import InvalidInput
from qosplane.store.identity import IdentityRepository


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
    name = required_name(body, "role", 255)
    domain = body.get("domain_id")
    if domain is not None and not isinstance(domain, str):
        raise InvalidInput("role.domain_id", domain, "a domain id or null")
    description = text(body, "description", "role.description", 255) or ""
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if domain is not None:
            repo.domain(domain)
        row = repo.create_role(name, description, domain)
        return ok({"role": role_json(row)}, status=201)


async def update_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:update_role")
    body = await json_body(request, "role")
    with services.db.transaction() as s:
        row = IdentityRepository(s).update_role(
            request.path_params["role_id"],
            text(body, "name", "role.name", 255, 1),
            text(body, "description", "role.description", 255),
        )
        return ok({"role": role_json(row)})


async def delete_role(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:delete_role")
    with services.db.transaction() as s:
        IdentityRepository(s).delete_role(request.path_params["role_id"])
    return empty(204)


async def implied_role(request: Request, services: Services) -> Response:
    """PUT (create, 201), GET (show), HEAD (check, 204), DELETE (204) of one inference rule
    (keystone/api/roles.py RoleImplicationResource), each under its own rule
    (keystone/common/policies/implied_role.py)."""
    ctx = context(request, services)
    prior, implied = request.path_params["prior_role_id"], request.path_params["implied_role_id"]
    rule = {
        "PUT": "identity:create_implied_role",
        "DELETE": "identity:delete_implied_role",
        "HEAD": "identity:check_implied_role",
    }.get(request.method, "identity:get_implied_role")
    authorize(services, ctx, rule)
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
                "prior_role": role_ref(repo.role(prior)),
                "implies": role_ref(repo.role(implied)),
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
            "prior_role": role_ref(repo.role(p)),
            "implies": [role_ref(repo.role(i)) for i in implied],
        }
        for p, implied in grouped.items()
    ]


async def list_implied_roles(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_implied_roles")
    prior = request.path_params["prior_role_id"]
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        found = _inferences(repo, prior)
        inference = found[0] if found else {"prior_role": role_ref(repo.role(prior)), "implies": []}
        return ok(
            {"role_inference": inference, "links": {"self": f"/identity/v3/roles/{prior}/implies"}}
        )


async def list_role_inferences(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "identity:list_role_inference_rules")
    with services.db.transaction() as s:
        return ok(
            {
                "role_inferences": _inferences(IdentityRepository(s), None),
                "links": {"self": "/identity/v3/role_inferences"},
            }
        )


def _grant_target(request: Request) -> tuple[str, str, str, str, bool]:
    """(actor kind, actor id, target id, role id, target is a domain) of a grant path:
    /{projects|domains}/{target}/{users|groups}/{actor}/roles[/{role}]."""
    p = request.path_params
    domain = "domain_id" in p
    target = p["domain_id"] if domain else p["project_id"]
    actor = "group" if "group_id" in p else "user"
    return actor, p[f"{actor}_id"], target, p.get("role_id", ""), domain


async def grant(request: Request, services: Services) -> Response:
    """PUT grants (204), HEAD/GET check (204 or 404), DELETE revokes a role of a user or
    a group on a project or a domain (keystone/api/projects.py, domains.py); a revoked
    role is gone from the affected tokens at their next request."""
    ctx = context(request, services)
    rule = {"PUT": "identity:create_grant", "DELETE": "identity:revoke_grant"}.get(
        request.method, "identity:check_grant"
    )
    authorize(services, ctx, rule)
    actor, actor_id, target, role, domain = _grant_target(request)
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if actor == "group":
            if request.method == "PUT":
                repo.grant_group(actor_id, target, role, domain)
            elif request.method == "DELETE":
                repo.revoke_group(actor_id, target, role, domain)
            else:
                repo.group_assignment(actor_id, target, role, domain)
        elif request.method == "PUT":
            repo.grant(actor_id, target, role, domain)
        elif request.method == "DELETE":
            repo.revoke(actor_id, target, role, domain)
        else:
            repo.assignment(actor_id, target, role, domain)
    return empty(204)


async def list_grants(request: Request, services: Services) -> Response:
    """A user lists its own roles on a target; anything else is identity:list_grants."""
    ctx = context(request, services)
    actor, actor_id, target, _, domain = _grant_target(request)
    if actor == "group" or actor_id != ctx.user_id:
        authorize(services, ctx, "identity:list_grants")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        repo.target(target, domain)
        if actor == "group":
            repo.group(actor_id)
            rows = repo.direct_group_roles(actor_id, target)
        else:
            repo.user(actor_id)
            rows = repo.direct_roles(actor_id, target)
        return ok(
            {
                "roles": [role_json(r) for r in rows],
                "links": {"self": request.url.path},
            }
        )


async def system_grant(request: Request, services: Services) -> Response:
    """PUT (grant), GET/HEAD (check), DELETE (revoke) of a role on the system for a user
    or a group (keystone/api/system.py); grants and revocations are the admin's."""
    ctx = context(request, services)
    p = request.path_params
    actor = "group" if "group_id" in p else "user"
    verb = {"PUT": "create", "DELETE": "revoke"}.get(request.method, "check")
    authorize(services, ctx, f"identity:{verb}_system_grant_for_{actor}")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if actor == "group":
            if verb == "create":
                repo.grant_group_system(p["group_id"], p["role_id"])
            elif verb == "revoke":
                repo.revoke_group_system(p["group_id"], p["role_id"])
            else:
                repo.group_system_assignment(p["group_id"], p["role_id"])
        elif verb == "create":
            repo.grant_system(p["user_id"], p["role_id"])
        elif verb == "revoke":
            repo.revoke_system(p["user_id"], p["role_id"])
        else:
            repo.system_assignment(p["user_id"], p["role_id"])
    return empty(204)


async def list_system_grants(request: Request, services: Services) -> Response:
    """A user lists its own system roles; anything else is list_system_grants_for_*."""
    ctx = context(request, services)
    p = request.path_params
    actor = "group" if "group_id" in p else "user"
    ref = p[f"{actor}_id"]
    if actor == "group" or ref != ctx.user_id:
        authorize(services, ctx, f"identity:list_system_grants_for_{actor}")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        if actor == "group":
            repo.group(ref)
            rows = repo.direct_group_system_roles(ref)
        else:
            repo.user(ref)
            rows = repo.direct_system_roles(ref)
        return ok({"roles": [role_json(r) for r in rows], "links": {"self": request.url.path}})


def _named(repo: IdentityRepository, kind: str, ref: str) -> dict[str, Any]:
    """The `include_names` form of one side of an assignment."""
    if kind == "role":
        return {"id": ref, "name": repo.role(ref).name}
    if kind == "system":
        return {"all": True}
    domain: str | None
    if kind == "user":
        user = repo.user(ref)
        name, domain = user.name, user.domain_id
    elif kind == "group":
        group = repo.group(ref)
        name, domain = group.name, group.domain_id
    else:
        project = repo.project(ref)
        name, domain = project.name, (None if project.is_domain else project.domain_id)
    out: dict[str, Any] = {"id": ref, "name": name}
    if domain is not None:
        out["domain"] = {"id": domain, "name": repo.domain(domain).name}
    return out


async def list_assignments(request: Request, services: Services) -> Response:
    """GET /v3/role_assignments (keystone/api/role_assignments.py): users' and groups'
    grants on projects, domains and the system, filtered by user.id, group.id, role.id,
    scope.project.id, scope.domain.id, scope.system. With `effective`, what users really
    hold: group grants become one entry per member, implied roles are added, and
    domain-specific roles are expanded away (keystone/assignment/core.py
    list_role_assignments)."""
    authorize(services, context(request, services), "identity:list_role_assignments")
    q = request.query_params
    # include_names (`role assignment list --names`) adds the names the client prints.
    names = "include_names" in q and q["include_names"].lower() in ("", "1", "true")
    effective = bool(query_flag(q, "effective"))
    scope_project, scope_domain = q.get("scope.project.id"), q.get("scope.domain.id")
    want_user, want_group, want_role = q.get("user.id"), q.get("group.id"), q.get("role.id")
    target = scope_project or scope_domain
    if effective and want_group is not None:
        # keystone/assignment/core.py list_role_assignments: "effective" expands groups
        # into users, so it cannot be filtered by one (400).
        raise InvalidInput("group.id", want_group, "absent when effective is asked")
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
        # (actor kind, actor id, target kind, target id, role id, implied from)
        found: list[tuple[str, str, str, str, str, str | None]] = []
        domains = {d.id for d in repo.domains()}

        def kind_of(target_id: str) -> str:
            return "domain" if target_id in domains else "project"

        if "scope.system" not in q and want_group is None:
            for a in repo.assignments(user_id=want_user, project_id=target):
                found.append(("user", a.user_id, kind_of(a.project_id), a.project_id, a.role, None))
        if "scope.system" not in q:
            groups = None
            if effective and want_user is not None:
                groups = repo.group_ids_of(want_user)
            elif want_group is not None:
                groups = {want_group}
            if want_user is None or effective:
                for g in repo.group_assignments(group_ids=groups, target_id=target):
                    kind = kind_of(g.target_id)
                    if not effective:
                        found.append(("group", g.group_id, kind, g.target_id, g.role, None))
                        continue
                    for member in repo.members(g.group_id):
                        if want_user in (None, member.id):
                            found.append(("user", member.id, kind, g.target_id, g.role, None))
        if scope_project is None and scope_domain is None:
            if want_group is None:
                for sa in repo.system_assignments(want_user):
                    found.append(("user", sa.user_id, "system", "all", sa.role, None))
            if want_user is None or effective:
                member_of = (
                    repo.group_ids_of(want_user)
                    if effective and want_user is not None
                    else ({want_group} if want_group is not None else None)
                )
                for gs in repo.group_system_assignments(member_of):
                    if not effective:
                        found.append(("group", gs.group_id, "system", "all", gs.role, None))
                        continue
                    for member in repo.members(gs.group_id):
                        if want_user in (None, member.id):
                            found.append(("user", member.id, "system", "all", gs.role, None))
        if scope_project is not None:
            found = [f for f in found if f[2] == "project"]
        if scope_domain is not None:
            found = [f for f in found if f[2] == "domain"]
        if want_group is not None and not effective:
            found = [f for f in found if f[0] == "group" and f[1] == want_group]
        if effective:
            expanded: list[tuple[str, str, str, str, str, str | None]] = []
            for f in found:
                for role in repo.expand({f[4]}):
                    expanded.append((*f[:4], role.id, None if role.id == f[4] else f[4]))
            found = list(dict.fromkeys(expanded))
        if want_role is not None:
            found = [f for f in found if f[4] == want_role]
        out = []
        for actor, actor_id, kind, target_id, role_id, prior in found:
            scope: dict[str, Any] = (
                {"system": {"all": True}}
                if kind == "system"
                else {kind: _named(repo, kind, target_id) if names else {"id": target_id}}
            )
            base = (
                "/identity/v3/system" if kind == "system" else f"/identity/v3/{kind}s/{target_id}"
            )
            links: dict[str, str] = {
                "assignment": f"{base}/{actor}s/{actor_id}/roles/{prior or role_id}"
            }
            if prior is not None:
                links["prior_role"] = f"/identity/v3/roles/{prior}"
            out.append(
                {
                    "role": _named(repo, "role", role_id) if names else {"id": role_id},
                    actor: _named(repo, actor, actor_id) if names else {"id": actor_id},
                    "scope": scope,
                    "links": links,
                }
            )
    return ok({"role_assignments": out, "links": {"self": request.url.path}})
