"""Cinder v3 subset: QoS specs (with associations), volume types, volumes.

Paths carry the project id (`/volume/v3/{project_id}/...`) as the catalog gives them. Changing
a spec or an association recompiles the plans of servers with an attached volume of an
associated type (qosplane re-applies front-end specs live; Cinder freezes them at attach).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.auth import Context
from qosplane.api.common import Services, base_url, context, empty, json_body, ok, wrap
from qosplane.model.errors import InvalidInput, NotFound
from qosplane.service.cinder import CinderService
from qosplane.store.views import QosSpecView, VolumeTypeView, VolumeView
from qosplane.store.volumes import VolumeRepository


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": "3.71",
        "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url(request)}/volume/v3/"}],
    }


async def versions(request: Request, services: Services) -> Response:
    status = 200 if request.url.path.rstrip("/").endswith("/v3") else 300
    return ok({"versions": [_version(request)]}, status=status)


def spec_json(repo: VolumeRepository, row: QosSpecView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "consumer": row.consumer,
        "specs": repo.specs_of(row),
        "links": [],
    }


def type_json(row: VolumeTypeView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "is_public": row.is_public,
        "os-volume-type-access:is_public": row.is_public,
        "extra_specs": {},
        "qos_specs_id": row.qos_specs_id,
    }


def volume_json(repo: VolumeRepository, row: VolumeView) -> dict[str, Any]:
    vtype = repo.volume_type(row.volume_type_id).name if row.volume_type_id else None
    attachments = []
    if row.server_id:
        attachments.append(
            {
                "id": row.id,
                "attachment_id": row.attachment_id,
                "volume_id": row.id,
                "server_id": row.server_id,
                "host_name": None,
                "device": None,
                "attached_at": row.attached_at,
            }
        )
    return {
        "id": row.id,
        "name": row.name,
        "size": row.size_gb,
        "status": row.status,
        "volume_type": vtype,
        "volume_type_id": row.volume_type_id,
        "attachments": attachments,
        "availability_zone": "nova",
        "bootable": "false",
        "encrypted": False,
        "multiattach": False,
        "created_at": row.created_at,
        "updated_at": row.created_at,
        "description": None,
        "metadata": {},
        "snapshot_id": None,
        "source_volid": None,
        "user_id": row.user_id,
        "os-vol-tenant-attr:tenant_id": row.project_id,
        "replication_status": None,
        "consistencygroup_id": None,
        "links": [],
    }


async def create_spec(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:create")
    body = dict(await json_body(request, "qos_specs"))
    name = body.pop("name", None)
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise InvalidInput("qos_specs.name", name, "a string of 1 to 255 characters")
    consumer = body.pop("consumer", None)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.create_spec(name.strip(), consumer, body)
        out = spec_json(repo, row)
    return ok({"qos_specs": out})


# Reading QoS specs and their associations is admin-only upstream, like changing them
# (cinder/policies/qos_specs.py: every volume_extension:qos_specs_manage:* is RULE_ADMIN_API):
# they describe the storage back ends, which projects see only through volume types.
async def list_specs(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:get_all")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        return ok({"qos_specs": [spec_json(repo, r) for r in repo.specs()]})


async def show_spec(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:get")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        return ok({"qos_specs": spec_json(repo, repo.spec(request.path_params["spec_id"]))})


async def set_spec(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:update")
    body = await json_body(request, "qos_specs")
    with services.db.transaction() as s:
        changed = CinderService(s).set_keys(request.path_params["spec_id"], body)
    return ok({"qos_specs": changed})


async def delete_keys(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:update")
    keys = (await json_body(request)).get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InvalidInput("keys", keys, "a list of spec keys")
    with services.db.transaction() as s:
        CinderService(s).delete_keys(request.path_params["spec_id"], keys)
    return empty(202)


async def delete_spec(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:delete")
    force = request.query_params.get("force", "False").lower() in ("true", "1", "yes")
    with services.db.transaction() as s:
        CinderService(s).delete_spec(request.path_params["spec_id"], force)
    return empty(202)


async def associate(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:update")
    type_id = request.query_params.get("vol_type_id")
    if not type_id:
        raise InvalidInput("vol_type_id", None, "a volume type id", "required")
    with services.db.transaction() as s:
        CinderService(s).associate(request.path_params["spec_id"], type_id)
    return empty(202)


async def disassociate(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:update")
    everything = request.url.path.endswith("disassociate_all")
    type_id = request.query_params.get("vol_type_id")
    if not everything and not type_id:
        raise InvalidInput("vol_type_id", None, "a volume type id", "required")
    with services.db.transaction() as s:
        CinderService(s).disassociate(
            request.path_params["spec_id"], None if everything else type_id
        )
    return empty(202)


async def associations(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:qos_specs_manage:get")
    with services.db.transaction() as s:
        types = VolumeRepository(s).associations(
            VolumeRepository(s).spec(request.path_params["spec_id"]).id
        )
        out = [{"association_type": "volume_type", "name": t.name, "id": t.id} for t in types]
    return ok({"qos_associations": out})


async def create_type(request: Request, services: Services) -> Response:
    context(request, services).require_admin("volume_extension:types_manage")
    body = await json_body(request, "volume_type")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise InvalidInput("volume_type.name", name, "a string of 1 to 255 characters")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidInput("volume_type.description", description, "a string or null")
    is_public = body.get("os-volume-type-access:is_public", True)
    if not isinstance(is_public, bool):
        raise InvalidInput(
            "volume_type.os-volume-type-access:is_public", is_public, "true or false"
        )
    with services.db.transaction() as s:
        row = VolumeRepository(s).create_type(name.strip(), description, is_public)
        return ok({"volume_type": type_json(row)})


async def list_types(request: Request, services: Services) -> Response:
    context(request, services)
    wanted = request.query_params.get("is_public", "true").lower()
    with services.db.transaction() as s:
        rows = VolumeRepository(s).volume_types()
    out = [type_json(r) for r in rows if wanted == "none" or r.is_public == (wanted != "false")]
    return ok({"volume_types": out})


async def show_type(request: Request, services: Services) -> Response:
    context(request, services)
    with services.db.transaction() as s:
        return ok(
            {
                "volume_type": type_json(
                    VolumeRepository(s).volume_type(request.path_params["type_id"])
                )
            }
        )


async def create_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request, "volume")
    size = body.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 2**31 - 1:
        raise InvalidInput("volume.size", size, "an integer from 1 to 2147483647 (GB)")
    name = body.get("name") or ""
    if not isinstance(name, str) or len(name) > 255:
        raise InvalidInput("volume.name", name, "a string of at most 255 characters")
    type_ref = body.get("volume_type")
    if type_ref is not None and not isinstance(type_ref, str):
        raise InvalidInput("volume.volume_type", type_ref, "a volume type name or id")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.create_volume(name, size, type_ref, ctx.project_id, ctx.user_id)
        return ok({"volume": volume_json(repo, row)}, status=202)


async def list_volumes(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        rows = repo.volumes(request.query_params.get("name"))
        out = [volume_json(repo, r) for r in rows if ctx.is_admin or r.project_id == ctx.project_id]
    return ok({"volumes": out})


def _visible_volume(repo: VolumeRepository, ctx: Context, volume_id: str) -> VolumeView:
    """The volume, if the caller's project owns it (or the caller is admin); another
    project's volume answers 404 like a missing one."""
    row = repo.volume(volume_id)
    if not ctx.is_admin and row.project_id != ctx.project_id:
        raise NotFound("Volume", row.id)
    return row


async def show_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = _visible_volume(repo, ctx, request.path_params["volume_id"])
        return ok({"volume": volume_json(repo, row)})


async def delete_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        repo.delete_volume(_visible_volume(repo, ctx, request.path_params["volume_id"]).id)
    return empty(202)


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("volume", services, handler)

    base = "/volume/v3/{project_id}"
    spec = base + "/qos-specs/{spec_id}"
    return [
        Route("/volume", w(versions), methods=["GET"]),
        Route("/volume/", w(versions), methods=["GET"]),
        Route("/volume/v3", w(versions), methods=["GET"]),
        Route("/volume/v3/", w(versions), methods=["GET"]),
        Route(base + "/qos-specs", w(list_specs), methods=["GET"]),
        Route(base + "/qos-specs", w(create_spec), methods=["POST"]),
        Route(spec, w(show_spec), methods=["GET"]),
        Route(spec, w(set_spec), methods=["PUT"]),
        Route(spec, w(delete_spec), methods=["DELETE"]),
        Route(spec + "/delete_keys", w(delete_keys), methods=["PUT"]),
        Route(spec + "/associate", w(associate), methods=["GET"]),
        Route(spec + "/disassociate", w(disassociate), methods=["GET"]),
        Route(spec + "/disassociate_all", w(disassociate), methods=["GET"]),
        Route(spec + "/associations", w(associations), methods=["GET"]),
        Route(base + "/types", w(list_types), methods=["GET"]),
        Route(base + "/types", w(create_type), methods=["POST"]),
        Route(base + "/types/{type_id}", w(show_type), methods=["GET"]),
        Route(base + "/volumes", w(list_volumes), methods=["GET"]),
        Route(base + "/volumes", w(create_volume), methods=["POST"]),
        Route(base + "/volumes/detail", w(list_volumes), methods=["GET"]),
        Route(base + "/volumes/{volume_id}", w(show_volume), methods=["GET"]),
        Route(base + "/volumes/{volume_id}", w(delete_volume), methods=["DELETE"]),
    ]
