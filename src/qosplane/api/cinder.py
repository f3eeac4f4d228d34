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
from qosplane.api.common import Services, authorize, base_url, context, empty, json_body, ok, wrap
from qosplane.model.errors import InvalidInput, NotFound
from qosplane.service.cinder import CinderService
from qosplane.store.views import EncryptionView, QosSpecView, VolumeTypeView, VolumeView
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
    }


def spec_links(request: Request, spec_id: str) -> list[dict[str, str]]:
    """cinder/api/views/qos_specs.py detail: self and bookmark, beside the spec."""
    path = request.url.path.split("/qos-specs")[0]
    return [
        {"rel": "self", "href": f"{base_url(request)}{path}/qos-specs/{spec_id}"},
        {"rel": "bookmark", "href": f"{base_url(request)}{path}/qos-specs/{spec_id}"},
    ]


def type_json(
    row: VolumeTypeView,
    extra_specs: dict[str, str],
    shape: str = "show",
    qos_specs_id_visible: bool = False,
) -> dict[str, Any]:
    """Cinder's view of a type (cinder/api/v2/views/types.py): `qos_specs_id` only where the
    type is shown or listed, and only to whom `volume_extension:access_types_qos_specs_id`
    allows (admin_api by default, cinder/policies/volume_type.py);
    `os-volume-type-access:is_public` not after an update."""
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "is_public": row.is_public,
        "os-volume-type-access:is_public": row.is_public,
        "extra_specs": extra_specs,
    }
    if shape == "show" and qos_specs_id_visible:
        out["qos_specs_id"] = row.qos_specs_id
    elif shape == "update":
        del out["os-volume-type-access:is_public"]
    return out


def _extra_specs(value: object, path: str) -> dict[str, str]:
    """Cinder's extra specs schema (cinder/api/validation/parameter_types.py extra_specs):
    an object of 1..255-character string keys and values."""
    if not isinstance(value, dict):
        raise InvalidInput(path, value, "a JSON object of string keys and values")
    for key, spec in value.items():
        if not 1 <= len(key) <= 255:
            raise InvalidInput(f"{path} key", key, "a string of 1 to 255 characters")
        if not isinstance(spec, str) or len(spec) > 255:
            raise InvalidInput(f"{path}.{key}", spec, "a string of at most 255 characters")
    return value


def microversion(request: Request) -> tuple[int, int]:
    """The Block Storage microversion asked for (`OpenStack-API-Version: volume 3.N`), 3.0
    when none is; "latest" is the maximum advertised."""
    raw = request.headers.get("openstack-api-version", "")
    service, _, number = raw.strip().partition(" ")
    if service.lower() != "volume" or not number:
        return (3, 0)
    if number.strip().lower() == "latest":
        return (3, 71)
    major, _, minor = number.strip().partition(".")
    if not (major.isdigit() and minor.isdigit()) or (int(major), int(minor)) > (3, 71):
        raise InvalidInput("OpenStack-API-Version", raw, "volume 3.0 to volume 3.71")
    return (int(major), int(minor))


def volume_json(
    repo: VolumeRepository,
    row: VolumeView,
    version: tuple[int, int] = (3, 0),
    tenant_attribute: bool = False,
) -> dict[str, Any]:
    """cinder/api/v2/views/volumes.py detail; `volume_type_id` from 3.63; the owner
    (`os-vol-tenant-attr:tenant_id`) on reads by an admin only, as the
    volume_tenant_attribute extension adds it (cinder/policies/volumes.py: admin)."""
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
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "size": row.size_gb,
        "status": row.status,
        "volume_type": vtype,
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
        "replication_status": None,
        "consistencygroup_id": None,
        "links": [],
    }
    if version >= (3, 63):
        out["volume_type_id"] = row.volume_type_id
    if tenant_attribute:
        out["os-vol-tenant-attr:tenant_id"] = row.project_id
    return out


async def create_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:create")
    body = dict(await json_body(request, "qos_specs"))
    name = body.pop("name", None)
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise InvalidInput("qos_specs.name", name, "a string of 1 to 255 characters")
    consumer = body.pop("consumer", None)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.create_spec(name.strip(), consumer, body)
        out = spec_json(repo, row)
    return ok({"qos_specs": out, "links": spec_links(request, out["id"])})


# Reading QoS specs and their associations is admin-only upstream, like changing them
# (cinder/policies/qos_specs.py: every volume_extension:qos_specs_manage:* is RULE_ADMIN_API):
# they describe the storage back ends, which projects see only through volume types.
async def list_specs(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:get_all")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        return ok({"qos_specs": [spec_json(repo, r) for r in repo.specs()]})


async def show_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:get")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        out = spec_json(repo, repo.spec(request.path_params["spec_id"]))
    return ok({"qos_specs": out, "links": spec_links(request, out["id"])})


async def set_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:update")
    body = await json_body(request, "qos_specs")
    with services.db.transaction() as s:
        changed = CinderService(s).set_keys(request.path_params["spec_id"], body)
    return ok({"qos_specs": changed})


async def delete_keys(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:update")
    keys = (await json_body(request)).get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InvalidInput("keys", keys, "a list of spec keys")
    with services.db.transaction() as s:
        CinderService(s).delete_keys(request.path_params["spec_id"], keys)
    return empty(202)


async def delete_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:delete")
    force = request.query_params.get("force", "False").lower() in ("true", "1", "yes")
    with services.db.transaction() as s:
        CinderService(s).delete_spec(request.path_params["spec_id"], force)
    return empty(202)


async def associate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:update")
    type_id = request.query_params.get("vol_type_id")
    if not type_id:
        raise InvalidInput("vol_type_id", None, "a volume type id", "required")
    with services.db.transaction() as s:
        CinderService(s).associate(request.path_params["spec_id"], type_id)
    return empty(202)


async def disassociate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:update")
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
    authorize(services, context(request, services), "volume_extension:qos_specs_manage:get")
    with services.db.transaction() as s:
        types = VolumeRepository(s).associations(
            VolumeRepository(s).spec(request.path_params["spec_id"]).id
        )
        out = [{"association_type": "volume_type", "name": t.name, "id": t.id} for t in types]
    return ok({"qos_associations": out})


async def create_type(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_manage")
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
    specs = _extra_specs(body.get("extra_specs") or {}, "volume_type.extra_specs")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.create_type(name.strip(), description, is_public)
        stored = repo.set_type_extra_specs(row.id, specs)
        return ok({"volume_type": type_json(row, stored, "create")})


async def list_types(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    # Only an admin sees private types (cinder/api/v2/types.py _get_volume_types).
    wanted = request.query_params.get("is_public", "true").lower() if ctx.is_admin else "true"
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        visible = _qos_specs_id_visible(services, ctx)
        out = [
            type_json(r, repo.type_extra_specs(r.id), qos_specs_id_visible=visible)
            for r in repo.volume_types()
            if wanted == "none" or r.is_public == (wanted != "false")
        ]
    return ok({"volume_types": out})


async def show_type(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.volume_type(request.path_params["type_id"])
        if not row.is_public and not ctx.is_admin:
            raise NotFound("Volume type", row.id)
        visible = _qos_specs_id_visible(services, ctx)
        return ok(
            {
                "volume_type": type_json(
                    row, repo.type_extra_specs(row.id), qos_specs_id_visible=visible
                )
            }
        )


def _qos_specs_id_visible(services: Services, ctx: Context) -> bool:
    return services.policy.allows(
        "volume_extension:access_types_qos_specs_id", {"project_id": ctx.project_id}, ctx
    )


async def update_type(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_manage")
    body = await json_body(request, "volume_type")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 255):
        raise InvalidInput("volume_type.name", name, "a string of 1 to 255 characters")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 255):
        raise InvalidInput(
            "volume_type.description", description, "a string of at most 255 characters"
        )
    is_public = body.get("is_public")
    if is_public is not None and not isinstance(is_public, bool):
        raise InvalidInput("volume_type.is_public", is_public, "true or false")
    if name is None and description is None and is_public is None:
        raise InvalidInput(
            "volume_type", body, "name, description or is_public", "nothing to update"
        )
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = repo.update_type(
            request.path_params["type_id"], name.strip() if name else None, description, is_public
        )
        return ok({"volume_type": type_json(row, repo.type_extra_specs(row.id), "update")})


async def delete_type(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_manage")
    with services.db.transaction() as s:
        VolumeRepository(s).delete_type(request.path_params["type_id"])
    return empty(202)


# cinder/api/contrib/types_extra_specs.py; every call is admin-only
# (cinder/policies/volume_type.py: volume_extension:types_extra_specs:*, RULE_ADMIN_API;
# index and show are admin-or-owner upstream, and a type has no owner).
async def list_type_extra_specs(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_extra_specs:index")
    with services.db.transaction() as s:
        specs = VolumeRepository(s).type_extra_specs(request.path_params["type_id"])
    return ok({"extra_specs": specs})


async def create_type_extra_specs(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_extra_specs:create")
    body = await json_body(request)
    specs = _extra_specs(body.get("extra_specs"), "extra_specs")
    with services.db.transaction() as s:
        VolumeRepository(s).set_type_extra_specs(request.path_params["type_id"], specs)
    return ok({"extra_specs": specs})


async def show_type_extra_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_extra_specs:show")
    key = request.path_params["key"]
    with services.db.transaction() as s:
        specs = VolumeRepository(s).type_extra_specs(request.path_params["type_id"])
    if key not in specs:
        raise NotFound("Volume Type extra spec", key)
    return ok({key: specs[key]})


async def update_type_extra_spec(request: Request, services: Services) -> Response:
    """The body is exactly the key of the URL (types_extra_specs.py update: "Request body
    and URI mismatch", "Request body contains too many items")."""
    authorize(services, context(request, services), "volume_extension:types_extra_specs:update")
    key = request.path_params["key"]
    body = _extra_specs(await json_body(request), "body")
    if key not in body:
        raise InvalidInput(
            key, sorted(body), f"a body of the one key {key}", "Request body and URI mismatch"
        )
    if len(body) > 1:
        raise InvalidInput(
            key,
            sorted(body),
            f"a body of the one key {key}",
            "Request body contains too many items",
        )
    with services.db.transaction() as s:
        VolumeRepository(s).set_type_extra_specs(request.path_params["type_id"], body)
    return ok(body)


async def delete_type_extra_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:types_extra_specs:delete")
    with services.db.transaction() as s:
        VolumeRepository(s).delete_type_extra_spec(
            request.path_params["type_id"], request.path_params["key"]
        )
    return empty(202)


# cinder/api/contrib/volume_type_encryption.py with the body schema of
# cinder/api/schemas/volume_type_encryption.py; every call is admin-only
# (cinder/policies/volume_type.py: volume_extension:volume_type_encryption:*, RULE_ADMIN_API).
CONTROL_LOCATIONS = ("front-end", "back-end")
_ENCRYPTION_FIELDS = {  # wire name -> column
    "provider": "provider",
    "cipher": "cipher",
    "key_size": "key_size_bits",
    "control_location": "control_location",
}


_CREATE_VIEW = ("volume_type_id", "encryption_id", *_ENCRYPTION_FIELDS)


def encryption_json(row: EncryptionView) -> dict[str, Any]:
    return {
        "volume_type_id": row.volume_type_id,
        "encryption_id": row.encryption_id,
        "provider": row.provider,
        "cipher": row.cipher,
        "key_size": row.key_size_bits,
        "control_location": row.control_location,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "deleted": False,
        "deleted_at": None,
    }


def _encryption_changes(body: dict[str, Any], create: bool) -> dict[str, object]:
    """The fields of an encryption body, by column; 400 naming the field otherwise."""
    unknown = sorted(set(body) - set(_ENCRYPTION_FIELDS))
    if unknown:
        raise InvalidInput(
            f"encryption.{unknown[0]}",
            body[unknown[0]],
            "one of " + ", ".join(_ENCRYPTION_FIELDS),
            "Additional properties are not allowed",
        )
    if create:
        for required in ("provider", "control_location"):
            if required not in body:
                raise InvalidInput(f"encryption.{required}", None, "a value", "required")
    elif not body:
        raise InvalidInput("encryption", body, "at least one of " + ", ".join(_ENCRYPTION_FIELDS))
    changes: dict[str, object] = {}
    for key, value in body.items():
        if key == "key_size":
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise InvalidInput("encryption.key_size", value, "a non-negative integer or null")
        elif key == "control_location":
            if value not in CONTROL_LOCATIONS:
                raise InvalidInput(
                    "encryption.control_location", value, "one of " + ", ".join(CONTROL_LOCATIONS)
                )
        elif key == "provider":
            if not isinstance(value, str) or len(value) > 255:
                raise InvalidInput("encryption.provider", value, "a string of 0 to 255 characters")
        elif value is not None and (not isinstance(value, str) or len(value) > 255):
            raise InvalidInput(
                f"encryption.{key}", value, "a string of 0 to 255 characters or null"
            )
        changes[_ENCRYPTION_FIELDS[key]] = value
    return changes


async def show_type_encryption(request: Request, services: Services) -> Response:
    """The type's encryption specs, or {} when it has none (Cinder's index)."""
    authorize(services, context(request, services), "volume_extension:volume_type_encryption:get")
    with services.db.transaction() as s:
        row = VolumeRepository(s).encryption(request.path_params["type_id"])
        return ok(encryption_json(row) if row is not None else {})


async def show_type_encryption_item(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "volume_extension:volume_type_encryption:get")
    key = request.path_params["key"]
    with services.db.transaction() as s:
        row = VolumeRepository(s).encryption(request.path_params["type_id"])
        specs = encryption_json(row) if row is not None else {}
    if key not in specs:
        raise NotFound("Volume type encryption spec", key)
    return ok({key: specs[key]})


async def create_type_encryption(request: Request, services: Services) -> Response:
    authorize(
        services, context(request, services), "volume_extension:volume_type_encryption:create"
    )
    body = await json_body(request, "encryption")
    changes = _encryption_changes(body, create=True)
    cipher, key_size = changes.get("cipher"), changes.get("key_size_bits")
    with services.db.transaction() as s:
        row = VolumeRepository(s).create_encryption(
            request.path_params["type_id"],
            str(changes["provider"]),
            str(changes["control_location"]),
            cipher if isinstance(cipher, str) else None,
            key_size if isinstance(key_size, int) else None,
        )
        # Cinder's create view: the specs and their ids, no timestamps.
        created = {k: v for k, v in encryption_json(row).items() if k in _CREATE_VIEW}
        return ok({"encryption": created})


async def update_type_encryption(request: Request, services: Services) -> Response:
    """The response is the fields the body set, as Cinder's update returns them."""
    authorize(
        services, context(request, services), "volume_extension:volume_type_encryption:update"
    )
    body = await json_body(request, "encryption")
    changes = _encryption_changes(body, create=False)
    with services.db.transaction() as s:
        VolumeRepository(s).update_encryption(
            request.path_params["type_id"], request.path_params["key"], changes
        )
    return ok({"encryption": body})


async def delete_type_encryption(request: Request, services: Services) -> Response:
    authorize(
        services, context(request, services), "volume_extension:volume_type_encryption:delete"
    )
    with services.db.transaction() as s:
        VolumeRepository(s).delete_encryption(
            request.path_params["type_id"], request.path_params["key"]
        )
    return empty(202)


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
    _may(services, ctx, "volume:create", ctx.project_id)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        if type_ref is not None and not ctx.is_admin:
            # A private type exists only for admins here (qosplane keeps no type access
            # lists): Cinder's VolumeTypeNotFound, 404.
            if not repo.type_by_name_or_id(type_ref).is_public:
                raise NotFound("Volume type", type_ref)
        row = repo.create_volume(name, size, type_ref, ctx.project_id, ctx.user_id)
        return ok({"volume": volume_json(repo, row, microversion(request))}, status=202)


async def list_volumes(request: Request, services: Services) -> Response:
    """The project's volumes; every project's with all_tenants, for an admin alone
    (cinder/api/v3/volumes.py: all_tenants is honoured for an admin context only)."""
    ctx = context(request, services)
    _may(services, ctx, "volume:get_all", ctx.project_id)
    every = ctx.is_admin and request.query_params.get("all_tenants", "0").lower() not in (
        "0",
        "false",
        "no",
    )
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        rows = repo.volumes(request.query_params.get("name"))
        out = [
            volume_json(repo, r, microversion(request), ctx.is_admin)
            for r in rows
            if every or r.project_id == ctx.project_id
        ]
    return ok({"volumes": out})


def _may(services: Services, ctx: Context, rule: str, project_id: str) -> None:
    """Cinder's context.authorize(rule, target={'project_id': ...})."""
    authorize(services, ctx, rule, {"project_id": project_id})


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
        _may(services, ctx, "volume:get", row.project_id)
        return ok({"volume": volume_json(repo, row, microversion(request), ctx.is_admin)})


async def delete_volume(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        row = _visible_volume(repo, ctx, request.path_params["volume_id"])
        _may(services, ctx, "volume:delete", row.project_id)
        repo.delete_volume(row.id)
    return empty(202)


async def volume_action(request: Request, services: Services) -> Response:
    """POST /volumes/{id}/action with os-extend or os-retype (cinder/api/contrib/
    volume_actions.py, volume_type... retype); the owner's members and admins may
    (cinder/policies/volume_actions.py: volume:extend, volume:retype,
    PROJECT_MEMBER_OR_ADMIN)."""
    ctx = context(request, services)
    body = await json_body(request)
    if len(body) != 1 or next(iter(body)) not in ("os-extend", "os-retype"):
        raise InvalidInput("action", sorted(body), "one of os-extend, os-retype")
    action, args = next(iter(body.items()))
    if not isinstance(args, dict):
        raise InvalidInput(action, args, "a JSON object")
    with services.db.transaction() as s:
        repo = VolumeRepository(s)
        volume = _visible_volume(repo, ctx, request.path_params["volume_id"])
        _may(services, ctx, f"volume:{action.removeprefix('os-')}", volume.project_id)
        if action == "os-extend":
            size = args.get("new_size")
            if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 2**31 - 1:
                raise InvalidInput(
                    "os-extend.new_size", size, "an integer from 1 to 2147483647 (GB)"
                )
            CinderService(s).extend(volume.id, size)
        else:
            new_type = args.get("new_type")
            if not isinstance(new_type, str):
                raise InvalidInput(
                    "os-retype.new_type", new_type, "a volume type name or id", "required"
                )
            policy = args.get("migration_policy", "never")
            if policy not in ("never", "on-demand"):
                raise InvalidInput("os-retype.migration_policy", policy, "never or on-demand")
            # An unknown type is VolumeTypeNotFound (404), as is a private one to a project.
            if not repo.type_by_name_or_id(new_type).is_public and not ctx.is_admin:
                raise NotFound("Volume type", new_type)
            CinderService(s).retype(volume.id, new_type)
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
        Route(base + "/types/{type_id}", w(update_type), methods=["PUT"]),
        Route(base + "/types/{type_id}", w(delete_type), methods=["DELETE"]),
        Route(base + "/types/{type_id}/extra_specs", w(list_type_extra_specs), methods=["GET"]),
        Route(base + "/types/{type_id}/encryption", w(show_type_encryption), methods=["GET"]),
        Route(base + "/types/{type_id}/encryption", w(create_type_encryption), methods=["POST"]),
        Route(
            base + "/types/{type_id}/encryption/{key}",
            w(show_type_encryption_item),
            methods=["GET"],
        ),
        Route(
            base + "/types/{type_id}/encryption/{key}",
            w(update_type_encryption),
            methods=["PUT"],
        ),
        Route(
            base + "/types/{type_id}/encryption/{key}",
            w(delete_type_encryption),
            methods=["DELETE"],
        ),
        Route(base + "/types/{type_id}/extra_specs", w(create_type_extra_specs), methods=["POST"]),
        Route(
            base + "/types/{type_id}/extra_specs/{key}", w(show_type_extra_spec), methods=["GET"]
        ),
        Route(
            base + "/types/{type_id}/extra_specs/{key}",
            w(update_type_extra_spec),
            methods=["PUT"],
        ),
        Route(
            base + "/types/{type_id}/extra_specs/{key}",
            w(delete_type_extra_spec),
            methods=["DELETE"],
        ),
        Route(base + "/volumes", w(list_volumes), methods=["GET"]),
        Route(base + "/volumes", w(create_volume), methods=["POST"]),
        Route(base + "/volumes/detail", w(list_volumes), methods=["GET"]),
        Route(base + "/volumes/{volume_id}", w(show_volume), methods=["GET"]),
        Route(base + "/volumes/{volume_id}", w(delete_volume), methods=["DELETE"]),
        Route(base + "/volumes/{volume_id}/action", w(volume_action), methods=["POST"]),
    ]
