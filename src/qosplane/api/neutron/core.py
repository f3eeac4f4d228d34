"""Neutron v2.0 core subset: networks (with qos_policy_id), subnets with IP allocation,
ports (qos_policy_id, qos_network_policy_id, binding:host_id, device_id), security groups.

Changing a port's or a network's QoS policy goes through the service layer, which recompiles
the plans of the servers behind it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import Context
from qosplane.api.common import Services, context, empty, json_body, ok, wrap
from qosplane.api.neutron.listing import neutron_list
from qosplane.api.neutron.qos import (
    as_seen,
    if_match,
    owner_of_new,
    policy_target,
    readable_policy,
    shared_here,
)
from qosplane.model.errors import Conflict, Forbidden, InvalidInput, NotFound
from qosplane.openstack.placement import resource_request
from qosplane.service.neutron import NeutronService
from qosplane.store.networks import NetworkRepository, NeutronChanges
from qosplane.store.qos_policies import QosPolicyRepository
from qosplane.store.records import RecordRepository
from qosplane.store.views import NetworkView, PortView, SubnetView

NETWORK_TYPES = ("", "flat", "vlan", "vxlan", "geneve", "gre", "local")


def network_json(row: NetworkView, subnet_ids: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "shared": row.shared,
        "mtu": row.mtu,
        "status": "ACTIVE",
        "admin_state_up": True,
        "subnets": subnet_ids,
        "qos_policy_id": row.qos_policy_id,
        "provider:network_type": row.network_type or None,
        "provider:physical_network": row.physical_network or None,
        "router:external": False,
        "revision_number": row.revision_number,
        "tags": [],
        "availability_zones": [],
        "availability_zone_hints": [],
        "description": "",
        "port_security_enabled": True,
        "is_default": False,
    }


def subnet_json(row: SubnetView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "network_id": row.network_id,
        "cidr": row.cidr,
        "ip_version": row.ip_version,
        "gateway_ip": row.gateway_ip,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "enable_dhcp": True,
        "allocation_pools": [{"start": row.pool_start, "end": row.pool_end}],
        "dns_nameservers": [],
        "host_routes": [],
        "service_types": [],
        "tags": [],
        "description": "",
        "revision_number": 0,
        "subnetpool_id": None,
        "ipv6_address_mode": None,
        "ipv6_ra_mode": None,
    }


def port_json(
    repo: NetworkRepository, row: PortView, with_resource_request: bool = False
) -> dict[str, Any]:
    """A port as Neutron shows it. `resource_request` (the Placement request of its
    policy's minimum rules, openstack/placement.py) only for those whose policy allows
    get_port:resource_request, as Neutron drops the attribute for everyone else."""
    net = repo.network(row.network_id)
    body = {
        "id": row.id,
        "name": row.name,
        "network_id": row.network_id,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "mac_address": row.mac_address,
        "admin_state_up": True,
        "status": "ACTIVE",
        "device_id": row.device_id,
        "device_owner": row.device_owner,
        "fixed_ips": [
            {"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}
            for ip in repo.fixed_ips(row.id)
        ],
        "binding:host_id": row.binding_host_id,
        "binding:vif_type": "ovs",
        "binding:vnic_type": "normal",
        "binding:profile": {},
        "binding:vif_details": {
            "port_filter": True,
            "ovs_hybrid_plug": False,
            "datapath_type": "system",
        },
        "qos_policy_id": row.qos_policy_id,
        "qos_network_policy_id": net.qos_policy_id,
        "security_groups": json.loads(row.security_groups),
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "port_security_enabled": True,
        "tags": [],
        "description": "",
        "revision_number": row.revision_number,
    }
    if with_resource_request:
        policy_id = row.qos_policy_id or net.qos_policy_id
        policies = QosPolicyRepository(repo.session)
        body["resource_request"] = resource_request(
            row.id,
            policies.get(policy_id) if policy_id else None,
            net.physical_network,
        )
    return body


def _sees_resource_request(services: Services, ctx: Context) -> bool:
    return services.policy.allows("get_port:resource_request", {"project_id": ctx.project_id}, ctx)


def _str(body: dict[str, Any], key: str, prefix: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidInput(f"{prefix}.{key}", value, "a string of at most 255 characters")
    return value


def _policy_ref(body: dict[str, Any], prefix: str) -> str | None:
    value = body.get("qos_policy_id")
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{prefix}.qos_policy_id", value, "a QoS policy id or null")
    return value


def _attachable(
    services: Services, s: Session, ctx: Context, body: dict[str, Any], prefix: str
) -> str | None:
    """The body's qos_policy_id, which the caller must be able to read: a foreign
    non-shared policy does not exist for it (Neutron's QosPolicyNotFound, 404)."""
    ref = _policy_ref(body, prefix)
    if ref is not None:
        readable_policy(services, QosPolicyRepository(s), ref, ctx)
    return ref


def _detachable(services: Services, s: Session, ctx: Context, current: str | None) -> None:
    """Replacing or removing a policy needs read access to it: an admin's non-shared policy
    on a member's network stays (neutron/core_extensions/qos.py, PolicyRemoveAuthorizationError,
    403)."""
    if current is None:
        return
    repo = QosPolicyRepository(s)
    policy = as_seen(repo.get(current), shared_here(repo, ctx))
    if not services.policy.allows("get_policy", policy_target(policy), ctx):
        raise Forbidden(
            f"Failed to remove provided policy {current} because you are not authorized."
        )


def _changes(
    services: Services,
    s: Session,
    ctx: Context,
    body: dict[str, Any],
    prefix: str,
    current: str | None,
) -> NeutronChanges:
    """The update a network or port body asks for. A new qos_policy_id must be readable,
    and a change must be allowed to let go of the policy now bound (`current`)."""
    name = _str(body, "name", prefix) if "name" in body else None
    if "qos_policy_id" not in body:
        return NeutronChanges(name=name)
    new = _attachable(services, s, ctx, body, prefix)
    if new != current:
        _detachable(services, s, ctx, current)
    return NeutronChanges(name=name, rebinds=True, qos_policy_id=new)


def _owns(ctx: Context, project_id: str) -> bool:
    return ctx.is_admin or project_id == ctx.project_id


def _sees(ctx: Context, network: NetworkView) -> bool:
    return network.shared or _owns(ctx, network.project_id)


def visible_network(repo: NetworkRepository, ctx: Context, network_id: str) -> NetworkView:
    """Another project's private network answers 404, as Neutron does."""
    row = repo.network(network_id)
    if not _sees(ctx, row):
        raise NotFound("Network", network_id)
    return row


def owned_network(repo: NetworkRepository, ctx: Context, network_id: str) -> NetworkView:
    row = visible_network(repo, ctx, network_id)
    if not _owns(ctx, row.project_id):
        raise Forbidden(f"Policy doesn't allow update_network to be performed on {network_id}.")
    return row


def owned_port(repo: NetworkRepository, ctx: Context, port_id: str) -> PortView:
    row = repo.port(port_id)
    if not _owns(ctx, row.project_id):
        raise NotFound("Port", port_id)
    return row


def _single(request: Request, key: str) -> str | None:
    """A filter the store can apply in SQL: given once. A repeated one (any of several
    values) is left to neutron_list, which matches every value."""
    values = request.query_params.getlist(key)
    return values[0] if len(values) == 1 else None


async def list_networks(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        rows = [r for r in repo.networks(_single(request, "name")) if _sees(ctx, r)]
        out = [network_json(r, [sn.id for sn in repo.subnets(r.id)]) for r in rows]
    return ok(neutron_list(request, "networks", out))


async def create_network(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "network")
    project_id = owner_of_new(body, "network", ctx)
    services.policy.enforce("create_network", {"project_id": project_id}, ctx)
    network_type = _str(body, "provider:network_type", "network")
    if network_type not in NETWORK_TYPES:
        raise InvalidInput(
            "network.provider:network_type", network_type, "one of " + ", ".join(NETWORK_TYPES[1:])
        )
    mtu = body.get("mtu", 1500)
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise InvalidInput("network.mtu", mtu, "an integer from 68 to 65535")
    shared = body.get("shared", False)
    if not isinstance(shared, bool):
        raise InvalidInput("network.shared", shared, "true or false")
    if shared:
        services.policy.enforce("create_network:shared", {"project_id": project_id}, ctx)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        qos_policy_id = _attachable(services, s, ctx, body, "network")
        if qos_policy_id is None:
            qos_policy_id = QosPolicyRepository(s).default_for(project_id)
        row = repo.create_network(
            _str(body, "name", "network"),
            project_id,
            shared=shared,
            qos_policy_id=qos_policy_id,
            mtu=mtu,
            network_type=network_type,
            physical_network=_str(body, "provider:physical_network", "network"),
        )
        out = network_json(row, [])
    return ok({"network": out}, status=201)


async def show_network(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = visible_network(repo, ctx, request.path_params["network_id"])
        out = network_json(row, [sn.id for sn in repo.subnets(row.id)])
    return ok({"network": out})


async def update_network(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "network")
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = owned_network(repo, ctx, request.path_params["network_id"])
        services.policy.enforce("update_network", {"project_id": row.project_id}, ctx)
        changes = _changes(services, s, ctx, body, "network", row.qos_policy_id)
        row = NeutronService(s).update_network(row.id, changes, if_match(request))
        out = network_json(row, [sn.id for sn in repo.subnets(row.id)])
    return ok({"network": out})


async def delete_network(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        repo.delete_network(owned_network(repo, ctx, request.path_params["network_id"]).id)
    return empty(204)


async def create_subnet(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "subnet")
    network_id = _str(body, "network_id", "subnet")
    cidr = _str(body, "cidr", "subnet")
    if not network_id or not cidr:
        raise InvalidInput(
            "subnet.network_id" if not network_id else "subnet.cidr", None, "a value", "required"
        )
    pools = body.get("allocation_pools")
    pool: tuple[str, str] | None = None
    if pools:
        if not isinstance(pools, list) or len(pools) != 1 or not isinstance(pools[0], dict):
            raise InvalidInput("subnet.allocation_pools", pools, "one {start, end} range")
        pool = (str(pools[0].get("start")), str(pools[0].get("end")))
    gateway = body.get("gateway_ip")
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        owned_network(repo, ctx, network_id)
        row = repo.create_subnet(
            network_id,
            _str(body, "name", "subnet"),
            cidr,
            ctx.project_id,
            gateway_ip=gateway if isinstance(gateway, str) else None,
            pool=pool,
        )
        out = subnet_json(row)
    return ok({"subnet": out}, status=201)


async def list_subnets(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        rows = repo.subnets(_single(request, "network_id"))
        out = [subnet_json(r) for r in rows if _sees(ctx, repo.network(r.network_id))]
    return ok(neutron_list(request, "subnets", out))


async def show_subnet(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = repo.subnet(request.path_params["subnet_id"])
        if not _sees(ctx, repo.network(row.network_id)):
            raise NotFound("Subnet", row.id)
        return ok({"subnet": subnet_json(row)})


async def list_ports(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        rows = repo.ports(
            device_id=_single(request, "device_id"),
            name=_single(request, "name"),
            network_id=_single(request, "network_id"),
        )
        wide = _sees_resource_request(services, ctx)
        out = [port_json(repo, r, wide) for r in rows if _owns(ctx, r.project_id)]
    return ok(neutron_list(request, "ports", out))


async def show_port(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = owned_port(repo, ctx, request.path_params["port_id"])
        return ok({"port": port_json(repo, row, _sees_resource_request(services, ctx))})


async def update_port(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "port")
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = owned_port(repo, ctx, request.path_params["port_id"])
        services.policy.enforce("update_port", {"project_id": row.project_id}, ctx)
        changes = _changes(services, s, ctx, body, "port", row.qos_policy_id)
        row = NeutronService(s).update_port(row.id, changes, if_match(request))
        out = port_json(repo, row, _sees_resource_request(services, ctx))
    return ok({"port": out})


async def create_port(request: Request, services: Services) -> Response:
    """A port on its own (`openstack port create`), to be given to a server with
    `server create --port`; it outlives that server (preserve_on_delete, as Nova does
    for ports it did not create)."""
    ctx = context(request, services)
    body = await json_body(request, "port")
    project_id = owner_of_new(body, "port", ctx)
    services.policy.enforce("create_port", {"project_id": project_id}, ctx)
    network_id = body.get("network_id")
    if not isinstance(network_id, str):
        raise InvalidInput("port.network_id", network_id, "a network id", "required")
    groups = body.get("security_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise InvalidInput("port.security_groups", groups, "a list of security group ids")
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        visible_network(repo, ctx, network_id)
        row = repo.create_port(
            network_id,
            project_id,
            name=_str(body, "name", "port"),
            security_groups=groups,
            qos_policy_id=_attachable(services, s, ctx, body, "port"),
            preserve_on_delete=True,
        )
        out = port_json(repo, row, _sees_resource_request(services, ctx))
    return ok({"port": out}, status=201)


async def delete_port(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = NetworkRepository(s)
        row = owned_port(repo, ctx, request.path_params["port_id"])
        if row.device_id:
            # Neutron would unplug it from under the server; here the server keeps a
            # consistent plan: detach it from the server first (or delete the server).
            raise Conflict("port", f"Port {row.id} is in use by server {row.device_id}.")
        repo.delete_port(row.id)
    return empty(204)


# Neutron API extensions this API implements (GET /v2.0/extensions): what clients probe.
EXTENSIONS = {
    "binding": "Port Binding",
    # api/neutron/listing.py: filters (validated), fields, sorting and pagination.
    "filter-validation": "Filter parameters validation",
    "pagination": "Pagination support",
    "sorting": "Sorting support",
    "port-security": "Port Security",
    "project-id": "project_id field enabled",
    # openstack/placement.py: the ports' resource_request, in the request-groups format.
    "port-resource-request": "Port Resource Request",
    "port-resource-request-groups": "Port Resource Request Groups",
    "qos": "Quality of Service",
    "qos-bw-limit-direction": "Direction for QoS bandwidth limit rule",
    "qos-bw-minimum-ingress": "Ingress direction for QoS minimum bandwidth rule",
    "qos-default": "QoS default policy",
    "qos-pps": "QoS packet rate limit rule",
    "qos-pps-minimum": "QoS minimum packet rate rule",
    "qos-rule-type-details": "Details of QoS rule types",
    # api/neutron/rbac.py: RBAC entries, for the qos_policy object type only.
    "rbac-policies": "RBAC Policies",
    "qos-rules-alias": "Quality of Service rules alias API",
    "security-group": "security-group",
    "standard-attr-revisions": "Resource revision numbers",
}


def _extension(alias: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": EXTENSIONS[alias],
        "description": EXTENSIONS[alias],
        "updated": "2013-02-03T10:00:00-00:00",
        "links": [],
    }


async def list_extensions(request: Request, services: Services) -> Response:
    context(request, services)
    return ok({"extensions": [_extension(a) for a in sorted(EXTENSIONS)]})


async def show_extension(request: Request, services: Services) -> Response:
    context(request, services)
    alias = request.path_params["alias"]
    if alias not in EXTENSIONS:
        raise NotFound("Extension", alias)
    return ok({"extension": _extension(alias)})


def sg_json(sg_id: str, name: str, project_id: str, description: str) -> dict[str, Any]:
    return {
        "id": sg_id,
        "name": name,
        "project_id": project_id,
        "tenant_id": project_id,
        "description": description,
        "security_group_rules": [],
        "tags": [],
        "stateful": True,
        "revision_number": 0,
    }


async def create_sg(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "security_group")
    name = _str(body, "name", "security_group")
    sg = sg_json(
        str(uuid.uuid4()), name, ctx.project_id, _str(body, "description", "security_group")
    )
    with services.db.transaction() as s:
        RecordRepository(s, "security_group").create(sg["id"], name, ctx.project_id, sg)
    return ok({"security_group": sg}, status=201)


async def list_sgs(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    name = request.query_params.get("name")
    with services.db.transaction() as s:
        repo = RecordRepository(s, "security_group", ctx.scope)
        sgs = repo.find(name) if name is not None else repo.list()
    return ok({"security_groups": sgs})


async def show_sg(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        return ok(
            {
                "security_group": RecordRepository(s, "security_group", ctx.scope).get(
                    request.path_params["sg_id"]
                )
            }
        )


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("network", services, handler)

    base = "/networking/v2.0"
    return [
        Route(base + "/networks", w(list_networks), methods=["GET"]),
        Route(base + "/networks", w(create_network), methods=["POST"]),
        Route(base + "/networks/{network_id}", w(show_network), methods=["GET"]),
        Route(base + "/networks/{network_id}", w(update_network), methods=["PUT"]),
        Route(base + "/networks/{network_id}", w(delete_network), methods=["DELETE"]),
        Route(base + "/subnets", w(list_subnets), methods=["GET"]),
        Route(base + "/subnets", w(create_subnet), methods=["POST"]),
        Route(base + "/subnets/{subnet_id}", w(show_subnet), methods=["GET"]),
        Route(base + "/ports", w(list_ports), methods=["GET"]),
        Route(base + "/ports", w(create_port), methods=["POST"]),
        Route(base + "/ports/{port_id}", w(show_port), methods=["GET"]),
        Route(base + "/ports/{port_id}", w(update_port), methods=["PUT"]),
        Route(base + "/ports/{port_id}", w(delete_port), methods=["DELETE"]),
        Route(base + "/extensions", w(list_extensions), methods=["GET"]),
        Route(base + "/extensions/{alias}", w(show_extension), methods=["GET"]),
        Route(base + "/security-groups", w(list_sgs), methods=["GET"]),
        Route(base + "/security-groups", w(create_sg), methods=["POST"]),
        Route(base + "/security-groups/{sg_id}", w(show_sg), methods=["GET"]),
    ]
