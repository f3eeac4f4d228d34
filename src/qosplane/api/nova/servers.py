"""Nova v2.1 servers, keypairs and availability zones, and the native plan of a server.

A server is created with one port per requested network (Nova's tap naming, fixed IPs from
the subnets), its plan is compiled and stored in the same transaction, and it goes ACTIVE,
or ERROR when the plan holds an error that stops libvirt from starting the guest (the host
agent of the next issue will take over the transition).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import Context
from qosplane.api.common import Services, authorize, base_url, context, empty, json_body, ok, wrap
from qosplane.api.neutron.core import owned_port, visible_network
from qosplane.api.nova.flavors import requested_version, version_headers
from qosplane.model.errors import InvalidInput, NotFound, NoValidHost
from qosplane.model.flavor import Flavor
from qosplane.service.nova import NovaService
from qosplane.store.flavors import FlavorRepository
from qosplane.store.hosts import DEFAULT_ZONE, HostRepository, Placement
from qosplane.store.networks import NetworkRepository
from qosplane.store.records import RecordRepository
from qosplane.store.servers import ServerRepository
from qosplane.store.views import ServerView
from qosplane.store.volumes import VolumeRepository


def server_json(request: Request, s: Any, row: ServerView, ver: tuple[int, int]) -> dict[str, Any]:
    networks = NetworkRepository(s)
    servers = ServerRepository(s)
    flavor = FlavorRepository(s).get(row.flavor_id)
    addresses: dict[str, list[dict[str, Any]]] = {}
    sg_names: list[dict[str, str]] = []
    sgs = RecordRepository(s, "security_group")
    for port_id in servers.port_ids(row):
        port = networks.port(port_id)
        net = networks.network(port.network_id)
        for ip in networks.fixed_ips(port.id):
            addresses.setdefault(net.name, []).append(
                {
                    "version": 6 if ":" in ip.ip_address else 4,
                    "addr": ip.ip_address,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port.mac_address,
                }
            )
        for sg_id in json.loads(port.security_groups):
            sg_names.append({"name": sgs.get(sg_id)["name"]})
    if ver >= (2, 47):
        flavor_body: dict[str, Any] = {
            "original_name": flavor.name,
            "vcpus": flavor.vcpus,
            "ram": flavor.ram_mb,
            "disk": flavor.disk_gb,
            "ephemeral": flavor.ephemeral_gb,
            "swap": flavor.swap_mb,
            "extra_specs": dict(flavor.extra_specs),
        }
    else:
        flavor_body = {
            "id": flavor.id,
            "links": [
                {"rel": "bookmark", "href": f"{base_url(request)}/compute/flavors/{flavor.id}"}
            ],
        }
    active = row.status == "ACTIVE"
    building = row.status == "BUILD"
    body: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "tenant_id": row.project_id,
        "user_id": row.user_id,
        "flavor": flavor_body,
        "image": {"id": row.image_id},
        "addresses": addresses,
        "security_groups": sg_names,
        "key_name": row.key_name,
        "metadata": {},
        "created": row.created_at,
        "updated": row.created_at,
        "hostId": (
            hashlib.sha224((row.project_id + row.host).encode()).hexdigest() if row.host else ""
        ),
        "OS-EXT-AZ:availability_zone": row.availability_zone,
        # nova/compute/vm_states.py and task_states.py: a server the agent has not applied
        # yet is building and spawning, not in error.
        "OS-EXT-STS:vm_state": "active" if active else "building" if building else "error",
        "OS-EXT-STS:task_state": "spawning" if building else None,
        # nova/compute/power_state.py: RUNNING (1) only where an agent runs the server;
        # on a plan-only host (no agent ever) nothing runs it: NOSTATE (0).
        "OS-EXT-STS:power_state": 1 if active and HostRepository(s).is_managed(row.host) else 0,
        "OS-SRV-USG:launched_at": row.created_at.replace("Z", ".000000") if active else None,
        "OS-SRV-USG:terminated_at": None,
        "OS-DCF:diskConfig": "MANUAL",
        "os-extended-volumes:volumes_attached": [
            {"id": v.id, "delete_on_termination": False}
            for v in VolumeRepository(s).attached_to(row.id)
        ],
        "progress": 0,
        "config_drive": "",
        "accessIPv4": "",
        "accessIPv6": "",
        "OS-EXT-SRV-ATTR:host": row.host or None,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": row.host or None,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{row.number:08x}",
        "links": [{"rel": "self", "href": f"{base_url(request)}/compute/v2.1/servers/{row.id}"}],
    }
    if not row.host:
        body["fault"] = {
            "code": 500,
            "message": "No valid host was found. There are not enough hosts available.",
            "created": row.created_at,
        }
    elif row.status == "ERROR":
        body["fault"] = {
            "code": 500,
            "message": "the compiled plan cannot be honoured on "
            f"{row.host}; see GET /qosplane/v1/servers/{row.id}/plan",
            "created": row.created_at,
        }
    return body


def _may(services: Services, ctx: Context, rule: str, project_id: str) -> None:
    """Nova's context.can(rule, target={'project_id': ...}) on the server's project."""
    authorize(services, ctx, f"os_compute_api:{rule}", {"project_id": project_id})


def visible_server(repo: ServerRepository, ctx: Context, server_id: str) -> ServerView:
    """The server, if the caller's project owns it (or the caller is admin); another
    project's server answers 404 like a missing one, as in Nova."""
    row = repo.get(server_id)
    if row.project_id != ctx.project_id and not ctx.is_admin:
        raise NotFound("Server", row.id)
    return row


def _lookup(repo: RecordRepository, ref: str, what: str) -> dict[str, Any]:
    try:
        return repo.get(ref)
    except NotFound:
        found = repo.find(ref)
        if len(found) != 1:
            raise InvalidInput(what, ref, f"the id or unique name of an existing {what}") from None
        return found[0]


def _check_image_fits(image: dict[str, Any], flavor: Flavor) -> None:
    """nova/compute/api.py _validate_flavor_image_nostatus: an image's min_ram (MiB) and
    min_disk (GiB) above the flavor's are FlavorMemoryTooSmall and
    FlavorDiskSmallerThanMinDisk, both 400; a flavor of disk 0 takes any image."""
    min_ram_mb = int(image.get("min_ram") or 0)
    if min_ram_mb > flavor.ram_mb:
        raise InvalidInput(
            "server.flavorRef",
            flavor.id,
            f"a flavor of at least {min_ram_mb} MB RAM (the image's min_ram)",
            "Flavor's memory is too small for requested image.",
        )
    min_disk_gb = int(image.get("min_disk") or 0)
    if flavor.disk_gb and min_disk_gb > flavor.disk_gb:
        raise InvalidInput(
            "server.flavorRef",
            flavor.id,
            f"a flavor of at least {min_disk_gb} GB disk (the image's min_disk)",
            "Flavor's disk is smaller than the minimum size specified in image metadata.",
        )


async def create_server(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    body = await json_body(request, "server")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InvalidInput("server.name", name, "a string of 1 to 255 characters")
    flavor_ref = body.get("flavorRef")
    if not isinstance(flavor_ref, str):
        raise InvalidInput("server.flavorRef", flavor_ref, "a flavor id", "required")
    image_ref = body.get("imageRef") or ""
    nets = body.get("networks", [])
    if nets == "auto":
        raise InvalidInput(
            "server.networks",
            nets,
            "a list of {uuid} or 'none'",
            "Unable to automatically allocate a network for the project",
        )
    if nets == "none":
        nets = []
    if not isinstance(nets, list) or not all(
        isinstance(n, dict) and (isinstance(n.get("uuid"), str) or isinstance(n.get("port"), str))
        for n in nets
    ):
        raise InvalidInput(
            "server.networks", nets, 'a list of {"uuid": network id} or {"port": port id}'
        )
    zone_ref = body.get("availability_zone")
    if zone_ref is not None and (not isinstance(zone_ref, str) or not zone_ref):
        raise InvalidInput("server.availability_zone", zone_ref, "a zone name, or zone:host")
    zone, _, forced_host = (zone_ref or "").partition(":")
    if forced_host:
        authorize(services, ctx, "os_compute_api:servers:create:forced_host")
    key_name = body.get("key_name")
    groups = body.get("security_groups") or []
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups
    ):
        raise InvalidInput("server.security_groups", groups, 'a list of {"name": id or name}')
    # After the body's schema, as Nova checks it (nova/api/openstack/compute/servers.py).
    _may(services, ctx, "servers:create", ctx.project_id)
    with services.db.transaction() as s:
        try:
            usable = FlavorRepository(s).can_use(flavor_ref, ctx.scope)
        except NotFound:
            usable = False
        if not usable:
            raise InvalidInput("server.flavorRef", flavor_ref, "the id of a flavor you may use")
        if image_ref:
            try:
                image = RecordRepository(s, "image", ctx.scope).get(image_ref)
            except NotFound:
                raise InvalidInput(
                    "server.imageRef", image_ref, "the id of an existing image"
                ) from None
            _check_image_fits(image, FlavorRepository(s).get(flavor_ref))
        if key_name is not None:
            try:
                RecordRepository(s, "keypair", ctx.user_id).named(key_name)
            except NotFound:
                raise InvalidInput(
                    "server.key_name", key_name, "the name of one of your keypairs"
                ) from None
        sg_repo = RecordRepository(s, "security_group", ctx.scope)
        sg_ids = [_lookup(sg_repo, g["name"], "security group")["id"] for g in groups]
        nics: list[tuple[str, str]] = []
        for n in nets:
            if isinstance(n.get("port"), str):
                try:
                    owned_port(NetworkRepository(s), ctx, n["port"])
                except NotFound:
                    raise InvalidInput(
                        "server.networks.port", n["port"], "the id of one of your ports"
                    ) from None
                nics.append(("port", n["port"]))
            else:
                visible_network(NetworkRepository(s), ctx, n["uuid"])
                nics.append(("network", n["uuid"]))
        try:
            placement = HostRepository(s).place(zone or None, forced_host or None)
        except NoValidHost:
            # Nova accepts the request (202) and the scheduler's NoValidHost puts the
            # server in ERROR with that fault (nova/conductor/manager.py
            # build_instances); a server with no host is that server here.
            placement = Placement(host="", zone=zone or DEFAULT_ZONE)
        row = NovaService(s).create_server(
            name=name,
            project_id=ctx.project_id,
            user_id=ctx.user_id,
            flavor_id=flavor_ref,
            image_id=image_ref,
            key_name=key_name,
            availability_zone=placement.zone,
            host=placement.host,
            security_groups=sg_ids,
            nics=nics,
        )
        if not row.host:
            row.status = "ERROR"
        out = {
            "id": row.id,
            "links": server_json(request, s, row, ver)["links"],
            "OS-DCF:diskConfig": "MANUAL",
            "adminPass": row.admin_pass,
            "security_groups": [{"name": sg_repo.get(i)["name"]} for i in sg_ids],
        }
    return ok({"server": out}, status=202)


async def show_server(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    with services.db.transaction() as s:
        row = visible_server(ServerRepository(s), ctx, request.path_params["server_id"])
        _may(services, ctx, "servers:show", row.project_id)
        return ok({"server": server_json(request, s, row, ver)})


async def list_servers(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    detail = request.url.path.rstrip("/").endswith("/detail")
    action = "servers:detail" if detail else "servers:index"
    _may(services, ctx, action, ctx.project_id)
    # nova/api/openstack/compute/servers.py _get_servers: every project's servers only
    # with all_tenants, which is the admin's (servers:index:get_all_tenants).
    every = request.query_params.get("all_tenants", "0").lower() not in ("0", "false", "no")
    if every:
        _may(services, ctx, f"{action}:get_all_tenants", ctx.project_id)
    with services.db.transaction() as s:
        rows = ServerRepository(s).find(
            request.query_params.get("name"), None if every else ctx.project_id
        )
        out = [
            server_json(request, s, r, ver) if detail else {"id": r.id, "name": r.name, "links": []}
            for r in rows
        ]
    return ok({"servers": out})


async def delete_server(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = ServerRepository(s)
        row = visible_server(repo, ctx, request.path_params["server_id"])
        _may(services, ctx, "servers:delete", row.project_id)
        repo.delete(row.id)
    return empty(204)


async def create_keypair(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "keypair")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InvalidInput("keypair.name", name, "a string of 1 to 255 characters")
    public_key = body.get("public_key") or f"ssh-ed25519 AAAA{uuid.uuid4().hex} qosplane-generated"
    fingerprint = ":".join(
        hashlib.md5(str(public_key).encode(), usedforsecurity=False).hexdigest()[i : i + 2]
        for i in range(0, 32, 2)
    )
    keypair = {
        "name": name,
        "public_key": public_key,
        "fingerprint": fingerprint,
        "user_id": ctx.user_id,
        "type": body.get("type", "ssh"),
    }
    with services.db.transaction() as s:
        RecordRepository(s, "keypair", ctx.user_id).create(
            f"{ctx.user_id}/{name}", name, ctx.user_id, keypair, unique_name=True
        )
    return ok({"keypair": keypair})


async def list_keypairs(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        keypairs = RecordRepository(s, "keypair", ctx.user_id).list()
    return ok({"keypairs": [{"keypair": k} for k in keypairs]})


async def show_keypair(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        keypair = RecordRepository(s, "keypair", ctx.user_id).named(request.path_params["name"])
    return ok({"keypair": keypair})


async def delete_keypair(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        RecordRepository(s, "keypair", ctx.user_id).delete(
            f"{ctx.user_id}/{request.path_params['name']}"
        )
    return empty(202)


async def attach_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    body = await json_body(request, "volumeAttachment")
    volume_id = body.get("volumeId")
    if not isinstance(volume_id, str):
        raise InvalidInput("volumeAttachment.volumeId", volume_id, "a volume id", "required")
    with services.db.transaction() as s:
        servers = ServerRepository(s)
        row = visible_server(servers, ctx, request.path_params["server_id"])
        _may(services, ctx, "os-volumes-attachments:create", row.project_id)
        volumes = VolumeRepository(s)
        try:
            volume = volumes.volume(volume_id)
        except NotFound:
            raise InvalidInput(
                "volumeAttachment.volumeId", volume_id, "an existing volume of yours"
            ) from None
        if not ctx.is_admin and volume.project_id != ctx.project_id:
            raise InvalidInput(
                "volumeAttachment.volumeId", volume_id, "an existing volume of yours"
            )
        NovaService(s).attach_volume(volume.id, row.id)
        # Volumes come after the image disks, in attach order: the newest is the last target.
        targets = list(servers.plan(row.id).qemu_drives)
        device = f"/dev/{targets[-1]}"
        out: dict[str, Any] = {
            "serverId": row.id,
            "volumeId": volume.id,
            "device": device,
            "tag": None,
            "delete_on_termination": False,
        }
        if ver >= (2, 89):
            out |= {"attachment_id": volume.attachment_id, "bdm_uuid": str(uuid.uuid4())}
        else:
            out["id"] = volume.id
    return ok({"volumeAttachment": out})


async def detach_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        servers = ServerRepository(s)
        row = visible_server(servers, ctx, request.path_params["server_id"])
        _may(services, ctx, "os-volumes-attachments:delete", row.project_id)
        NovaService(s).detach_volume(request.path_params["volume_id"], row.id)
    return empty(202)


async def list_attachments(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        servers = ServerRepository(s)
        row = visible_server(servers, ctx, request.path_params["server_id"])
        _may(services, ctx, "os-volumes-attachments:index", row.project_id)
        volumes = VolumeRepository(s).attached_to(row.id)
        targets = list(servers.plan(row.id).qemu_drives)[-len(volumes) :] if volumes else []
        out = [
            {
                "id": v.id,
                "serverId": row.id,
                "volumeId": v.id,
                "device": f"/dev/{target}",
                "tag": None,
                "delete_on_termination": False,
                "attachment_id": v.attachment_id,
            }
            for v, target in zip(volumes, targets, strict=True)
        ]
    return ok({"volumeAttachments": out})


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("compute", services, handler, version_headers)

    base = "/compute/v2.1"
    return [
        Route(base + "/servers", w(list_servers), methods=["GET"]),
        Route(base + "/servers", w(create_server), methods=["POST"]),
        Route(base + "/servers/detail", w(list_servers), methods=["GET"]),
        Route(base + "/servers/{server_id}", w(show_server), methods=["GET"]),
        Route(base + "/servers/{server_id}", w(delete_server), methods=["DELETE"]),
        Route(base + "/os-keypairs", w(list_keypairs), methods=["GET"]),
        Route(base + "/os-keypairs", w(create_keypair), methods=["POST"]),
        Route(base + "/os-keypairs/{name}", w(show_keypair), methods=["GET"]),
        Route(base + "/os-keypairs/{name}", w(delete_keypair), methods=["DELETE"]),
        Route(
            base + "/servers/{server_id}/os-volume_attachments", w(attach_volume), methods=["POST"]
        ),
        Route(
            base + "/servers/{server_id}/os-volume_attachments",
            w(list_attachments),
            methods=["GET"],
        ),
        Route(
            base + "/servers/{server_id}/os-volume_attachments/{volume_id}",
            w(detach_volume),
            methods=["DELETE"],
        ),
    ]
