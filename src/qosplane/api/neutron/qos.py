"""Neutron v2.0 subset: QoS policies (rules embedded), the five rule collections, rule types.

Neutron's own validation applies (DSCP set, directions, ranges, one rule per type and
direction, min/max conflicts, one default policy per project); PUTs are partial; an
`If-Match: revision_number=N` header makes an update conditional.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import Context
from qosplane.api.common import Services, base_url, context, empty, json_body, ok, wrap
from qosplane.api.neutron.listing import neutron_list
from qosplane.model.errors import INT32_MAX, Forbidden, InvalidInput, NotFound, parse_int
from qosplane.model.network_qos import (
    NEUTRON_INT_MAX,
    RULE_TYPES,
    VALID_DSCP_MARKS,
    QosPolicy,
    Rule,
)
from qosplane.openstack.neutron import RULE_FIELDS, RULE_TABLE, rule_from_json, rule_to_json
from qosplane.service.neutron_qos import NeutronQosService
from qosplane.store.networks import NetworkRepository
from qosplane.store.qos_policies import QosPolicyRepository
from qosplane.store.rbac import RbacRepository

_POLICY_FIELDS = ("name", "description", "shared", "is_default", "tags", "project_id", "tenant_id")
_RANGE = {"type": "range", "values": {"start": 0, "end": NEUTRON_INT_MAX}}


def if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    value = header.strip().removeprefix("revision_number=")
    return parse_int("If-Match revision_number", value, 0, INT32_MAX)


def rule_json(rule: Rule, policy_id: str) -> dict[str, Any]:
    body = rule_to_json(rule)
    body["qos_policy_id"] = policy_id
    return body


def policy_json(policy: QosPolicy, revision: int) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "shared": policy.shared,
        "is_default": policy.is_default,
        "project_id": policy.project_id,
        "tenant_id": policy.project_id,
        "rules": [rule_json(r, policy.id) for r in policy.rules],
        "tags": list(policy.tags),
        "revision_number": revision,
        "created_at": None,
        "updated_at": None,
    }


def policy_target(policy: QosPolicy) -> dict[str, Any]:
    """What a policy's rules are checked against (neutron/conf/policies/qos.py)."""
    return {
        "id": policy.id,
        "project_id": policy.project_id,
        "tenant_id": policy.project_id,
        "shared": policy.shared,
        "is_default": policy.is_default,
    }


def _rule_target(policy: QosPolicy) -> dict[str, Any]:
    # A rule's owner is its policy's: Neutron's `ext_parent_owner`.
    return {"project_id": policy.project_id, "ext_parent:project_id": policy.project_id}


def as_seen(policy: QosPolicy, shared_here: set[str]) -> QosPolicy:
    """The policy as one project sees it: `shared` when shared with every project or with
    that one by an RBAC entry (neutron/objects/rbac_db.py is_shared_with_project)."""
    if policy.shared or policy.id not in shared_here:
        return policy
    return replace(policy, shared=True)


def shared_here(repo: QosPolicyRepository, ctx: Context) -> set[str]:
    return RbacRepository(repo.session).shared_with(ctx.project_id)


def readable_policy(
    services: Services, repo: QosPolicyRepository, policy_id: str, ctx: Context
) -> QosPolicy:
    """The policy as the caller sees it, or NotFound when the caller may not read it (as if
    it did not exist, which is also what attaching it to a network or port answers:
    QosPolicyNotFound)."""
    policy = as_seen(repo.get(policy_id), shared_here(repo, ctx))
    if not services.policy.allows("get_policy", policy_target(policy), ctx):
        raise NotFound("QoS policy", policy_id)
    return policy


def owner_of_new(body: dict[str, Any], prefix: str, ctx: Context) -> str:
    """The project a new resource belongs to: `project_id` (or `tenant_id`) when given, which
    the policy then checks (only an admin creates in another project), else the caller's."""
    given = body.get("project_id", body.get("tenant_id"))
    if given is None:
        return ctx.project_id
    if not isinstance(given, str) or not 1 <= len(given) <= 255:
        raise InvalidInput(f"{prefix}.project_id", given, "a project id of 1 to 255 characters")
    other = body.get("tenant_id")
    if other is not None and "project_id" in body and other != given:
        raise InvalidInput(f"{prefix}.tenant_id", other, f"the same as project_id ({given})")
    return given


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidInput(f"policy.{key}", value, "true or false")
    return value


def _text(body: dict[str, Any], key: str, limit: int = 255) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"policy.{key}", value, f"a string of at most {limit} characters")
    return value


def _check_policy_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key, value in body.items():
        if key not in allowed:
            raise InvalidInput(
                f"policy.{key}",
                value,
                "attributes " + ", ".join(allowed),
                "unrecognized attribute",
            )


async def versions(request: Request, services: Services) -> Response:
    return ok(
        {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{base_url(request)}/networking/v2.0/"}],
                }
            ]
        }
    )


async def list_policies(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        here = shared_here(repo, ctx)
        seen = [as_seen(p, here) for p in repo.list(None)]
        out = [
            policy_json(p, repo.revision(p.id))
            for p in seen
            if services.policy.allows("get_policy", policy_target(p), ctx)
        ]
    return ok(neutron_list(request, "policies", out))


async def create_policy(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "policy")
    _check_policy_fields(body, _POLICY_FIELDS)
    project_id = owner_of_new(body, "policy", ctx)
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput("policy.tags", tags, "a list of strings")
    policy = QosPolicy(
        name=_text(body, "name") or "",
        description=_text(body, "description") or "",
        shared=bool(_bool(body, "shared")),
        is_default=bool(_bool(body, "is_default")),
        project_id=str(project_id),
        tags=tuple(tags),
    )
    services.policy.enforce("create_policy", policy_target(policy), ctx)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        created = repo.create(policy)
        out = policy_json(created, repo.revision(created.id))
    return ok({"policy": out}, status=201)


async def show_policy(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
        out = policy_json(policy, repo.revision(policy.id))
    return ok({"policy": out})


async def update_policy(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "policy")
    _check_policy_fields(body, ("name", "description", "shared", "is_default"))
    # Neutron validates the body before it looks the policy up or checks the caller.
    name, description = _text(body, "name"), _text(body, "description")
    shared, is_default = _bool(body, "shared"), _bool(body, "is_default")
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
        services.policy.enforce("update_policy", policy_target(policy), ctx)
        # Unsharing while others' ports and networks depend on it is RbacPolicyInUse (409),
        # decided where the wildcard entry goes (store/rbac.py).
        updated = NeutronQosService(s).update_policy(
            policy.id,
            name=name,
            description=description,
            shared=shared,
            is_default=is_default,
            if_revision=if_match(request),
        )
        out = policy_json(as_seen(updated, shared_here(repo, ctx)), repo.revision(policy.id))
    return ok({"policy": out})


async def delete_policy(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
        services.policy.enforce("delete_policy", policy_target(policy), ctx)
        NetworkRepository(s).check_policy_unused(policy.id)
        repo.delete(policy.id)
    return empty(204)


def _readable_rules(
    services: Services, repo: QosPolicyRepository, request: Request, rule_type: str, ctx: Context
) -> QosPolicy:
    """A policy whose `rule_type` rules the caller may read; a read it may not make is a 404
    in Neutron, like a resource that does not exist."""
    policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
    if not services.policy.allows(f"get_policy_{rule_type}_rule", _rule_target(policy), ctx):
        raise NotFound("QoS policy", policy.id)
    return policy


def _rule_type(request: Request) -> str:
    collection = str(request.path_params["collection"])
    rule_type = collection.removesuffix("_rules")
    if not collection.endswith("_rules") or rule_type not in RULE_TYPES:
        raise NotFound("resource", request.url.path)
    return rule_type


async def create_rule(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    rule_type = _rule_type(request)
    body = await json_body(request, f"{rule_type}_rule")
    rule = rule_from_json(rule_type, body, f"{rule_type}_rule")
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        # A create the policy refuses is 403 even on a policy the caller cannot read
        # (neutron/pecan_wsgi/hooks/policy_enforcement.py hides only PUT and DELETE
        # targets behind a 404; tempest's test_rule_create_forbidden_for_regular_projects).
        policy = repo.get(request.path_params["policy_id"])
        services.policy.enforce(f"create_policy_{rule_type}_rule", _rule_target(policy), ctx)
        stored = NeutronQosService(s).add_rule(policy.id, rule, if_match(request))
    return ok({f"{rule_type}_rule": rule_json(stored, policy.id)}, status=201)


async def list_rules(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    rule_type = _rule_type(request)
    with services.db.transaction() as s:
        policy = _readable_rules(services, QosPolicyRepository(s), request, rule_type, ctx)
    rules = [rule_json(r, policy.id) for r in policy.rules if r.type_name == rule_type]
    return ok(neutron_list(request, f"{rule_type}_rules", rules))


async def show_rule(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    rule_type = _rule_type(request)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = _readable_rules(services, repo, request, rule_type, ctx)
        rule = repo.get_rule(policy.id, request.path_params["rule_id"])
    if rule.type_name != rule_type:
        raise NotFound("QoS rule", request.path_params["rule_id"])
    return ok({f"{rule_type}_rule": rule_json(rule, policy.id)})


async def update_rule(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    rule_type = _rule_type(request)
    changes = await json_body(request, f"{rule_type}_rule")
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
        services.policy.enforce(f"update_policy_{rule_type}_rule", _rule_target(policy), ctx)
        rule_id = request.path_params["rule_id"]
        current = repo.get_rule(policy.id, rule_id)
        if current.type_name != rule_type:
            raise NotFound("QoS rule", rule_id)
        merged = {k: v for k, v in rule_to_json(current).items() if k in RULE_FIELDS[rule_type]}
        merged.update(changes)
        merged["id"] = rule_id
        new_rule = rule_from_json(rule_type, merged, f"{rule_type}_rule")
        stored = NeutronQosService(s).replace_rule(policy.id, rule_id, new_rule, if_match(request))
    return ok({f"{rule_type}_rule": rule_json(stored, policy.id)})


async def delete_rule(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    rule_type = _rule_type(request)
    with services.db.transaction() as s:
        repo = QosPolicyRepository(s)
        policy = readable_policy(services, repo, request.path_params["policy_id"], ctx)
        services.policy.enforce(f"delete_policy_{rule_type}_rule", _rule_target(policy), ctx)
        rule_id = request.path_params["rule_id"]
        if repo.get_rule(policy.id, rule_id).type_name != rule_type:
            raise NotFound("QoS rule", rule_id)
        NeutronQosService(s).delete_rule(policy.id, rule_id, if_match(request))
    return empty(204)


def _parameters(rule_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in RULE_FIELDS[rule_type]:
        if name == "direction":
            values = list(RULE_TABLE[rule_type].directions)
            out.append(
                {"parameter_name": name, "parameter_type": "choices", "parameter_values": values}
            )
        elif name == "dscp_mark":
            out.append(
                {
                    "parameter_name": name,
                    "parameter_type": "choices",
                    "parameter_values": sorted(VALID_DSCP_MARKS),
                }
            )
        else:
            out.append(
                {
                    "parameter_name": name,
                    "parameter_type": _RANGE["type"],
                    "parameter_values": _RANGE["values"],
                }
            )
    return out


async def list_rule_types(request: Request, services: Services) -> Response:
    services.policy.enforce("get_rule_type", {}, context(request, services))
    return ok({"rule_types": [{"type": t} for t in RULE_TYPES]})


async def show_rule_type(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    services.policy.enforce("get_rule_type", {}, ctx)
    # Its drivers and their parameters describe the cloud's back ends: the QoS plugin
    # itself refuses them to non-admins (neutron/services/qos/qos_plugin.py get_rule_type),
    # in code, not by a policy rule.
    if not ctx.is_admin:
        raise Forbidden("Policy doesn't allow get_rule_type to be performed.")
    rule_type = request.path_params["rule_type"]
    if rule_type not in RULE_TYPES:
        raise NotFound("QoS rule type", rule_type)
    return ok(
        {
            "rule_type": {
                "type": rule_type,
                "drivers": [{"name": "qosplane", "supported_parameters": _parameters(rule_type)}],
            }
        }
    )


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("network", services, handler)

    base = "/networking/v2.0/qos"
    return [
        Route("/networking", w(versions), methods=["GET"]),
        Route("/networking/", w(versions), methods=["GET"]),
        Route(base + "/policies", w(list_policies), methods=["GET"]),
        Route(base + "/policies", w(create_policy), methods=["POST"]),
        Route(base + "/policies/{policy_id}", w(show_policy), methods=["GET"]),
        Route(base + "/policies/{policy_id}", w(update_policy), methods=["PUT"]),
        Route(base + "/policies/{policy_id}", w(delete_policy), methods=["DELETE"]),
        Route(base + "/policies/{policy_id}/{collection}", w(list_rules), methods=["GET"]),
        Route(base + "/policies/{policy_id}/{collection}", w(create_rule), methods=["POST"]),
        Route(base + "/policies/{policy_id}/{collection}/{rule_id}", w(show_rule), methods=["GET"]),
        Route(
            base + "/policies/{policy_id}/{collection}/{rule_id}", w(update_rule), methods=["PUT"]
        ),
        Route(
            base + "/policies/{policy_id}/{collection}/{rule_id}",
            w(delete_rule),
            methods=["DELETE"],
        ),
        Route(base + "/rule-types", w(list_rule_types), methods=["GET"]),
        Route(base + "/rule-types/{rule_type}", w(show_rule_type), methods=["GET"]),
    ]
