"""Neutron's /v2.0/rbac-policies for QoS policies: share one policy with one project, or
with every project (`*`, the same as setting its `shared`).

Upstream: neutron/extensions/rbac.py (attributes), neutron/db/rbac_db_mixin.py (create,
update, delete, RbacPolicyInUse), neutron/conf/policies/rbac.py (who may). qosplane has
RBAC for `qos_policy` objects only; networks are shared with `shared`, as before.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import Context
from qosplane.api.common import Services, context, empty, json_body, ok, wrap
from qosplane.api.neutron.listing import neutron_list
from qosplane.model.errors import InvalidInput, NotFound
from qosplane.model.network_qos import QosPolicy
from qosplane.store.qos_policies import QosPolicyRepository
from qosplane.store.rbac import ACCESS_AS_SHARED, QOS_POLICY, RbacRepository
from qosplane.store.views import RbacPolicyView

# neutron/extensions/rbac.py RESOURCE_ATTRIBUTE_MAP: what a body may carry.
_CREATE_FIELDS = ("object_type", "object_id", "action", "target_tenant", "project_id", "tenant_id")
PROJECT_ID_LENGTH = 255  # neutron_lib/db/constants.py PROJECT_ID_FIELD_SIZE


def entry_json(row: RbacPolicyView) -> dict[str, Any]:
    return {
        "id": row.id,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "action": row.action,
        "target_tenant": row.target_project,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
    }


def _target(body: dict[str, Any]) -> str:
    value = body.get("target_tenant")
    if not isinstance(value, str) or not 1 <= len(value) <= PROJECT_ID_LENGTH:
        raise InvalidInput(
            "rbac_policy.target_tenant",
            value,
            f"a project id of 1 to {PROJECT_ID_LENGTH} characters, or *",
        )
    return value


def _readable(services: Services, row: RbacPolicyView, ctx: Context) -> bool:
    return services.policy.allows("get_rbac_policy", {"project_id": row.project_id}, ctx)


def _visible_entry(
    services: Services, repo: RbacRepository, entry_id: str, ctx: Context
) -> RbacPolicyView:
    row = repo.entry(entry_id)
    if not _readable(services, row, ctx):
        raise NotFound("RBAC policy", entry_id)
    return row


async def create_entry(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "rbac_policy")
    for key, value in body.items():
        if key not in _CREATE_FIELDS:
            raise InvalidInput(
                f"rbac_policy.{key}",
                value,
                "attributes " + ", ".join(_CREATE_FIELDS),
                "unrecognized attribute",
            )
    if body.get("object_type") != QOS_POLICY:
        raise InvalidInput(
            "rbac_policy.object_type",
            body.get("object_type"),
            f"{QOS_POLICY} (the one type qosplane shares)",
        )
    if body.get("action") != ACCESS_AS_SHARED:
        raise InvalidInput("rbac_policy.action", body.get("action"), ACCESS_AS_SHARED)
    object_id = body.get("object_id")
    if not isinstance(object_id, str):
        raise InvalidInput("rbac_policy.object_id", object_id, "a QoS policy id", "required")
    target = _target(body)
    target_check = {"project_id": ctx.project_id, "target_tenant": target}
    services.policy.enforce("create_rbac_policy", {"project_id": ctx.project_id}, ctx)
    services.policy.enforce("create_rbac_policy:target_tenant", target_check, ctx)
    with services.db.transaction() as s:
        # Only the owner (or an admin) shares a policy; anyone else gets the same 400
        # whether or not the policy exists, as Neutron's "not found or not owned".
        try:
            policy: QosPolicy | None = QosPolicyRepository(s).get(object_id)
        except NotFound:
            policy = None
        if policy is None or not (ctx.is_admin or policy.project_id == ctx.project_id):
            raise InvalidInput(
                "rbac_policy.object_id",
                object_id,
                "a QoS policy of your project",
                "not found or not owned",
            )
        row = RbacRepository(s).create(policy.id, target, policy.project_id)
        out = entry_json(row)
    return ok({"rbac_policy": out}, status=201)


async def list_entries(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        out = [entry_json(r) for r in RbacRepository(s).entries() if _readable(services, r, ctx)]
    return ok(neutron_list(request, "rbac_policies", out))


async def show_entry(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        out = entry_json(
            _visible_entry(services, RbacRepository(s), request.path_params["entry_id"], ctx)
        )
    return ok({"rbac_policy": out})


async def update_entry(request: Request, services: Services) -> Response:
    """Only `target_tenant` changes (allow_put); moving an entry others depend on is 409."""
    ctx = context(request, services)
    body = await json_body(request, "rbac_policy")
    for key, value in body.items():
        if key != "target_tenant":
            raise InvalidInput(
                f"rbac_policy.{key}", value, "target_tenant only", "cannot be updated"
            )
    target = _target(body)
    with services.db.transaction() as s:
        repo = RbacRepository(s)
        row = _visible_entry(services, repo, request.path_params["entry_id"], ctx)
        services.policy.enforce("update_rbac_policy", {"project_id": row.project_id}, ctx)
        services.policy.enforce(
            "update_rbac_policy:target_tenant",
            {"project_id": row.project_id, "target_tenant": target},
            ctx,
        )
        out = entry_json(repo.retarget(row.id, target))
    return ok({"rbac_policy": out})


async def delete_entry(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = RbacRepository(s)
        row = _visible_entry(services, repo, request.path_params["entry_id"], ctx)
        services.policy.enforce("delete_rbac_policy", {"project_id": row.project_id}, ctx)
        repo.remove(row.id)
    return empty(204)


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("network", services, handler)

    base = "/networking/v2.0/rbac-policies"
    return [
        Route(base, w(list_entries), methods=["GET"]),
        Route(base, w(create_entry), methods=["POST"]),
        Route(base + "/{entry_id}", w(show_entry), methods=["GET"]),
        Route(base + "/{entry_id}", w(update_entry), methods=["PUT"]),
        Route(base + "/{entry_id}", w(delete_entry), methods=["DELETE"]),
    ]
