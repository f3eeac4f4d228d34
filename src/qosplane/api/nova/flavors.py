"""Nova v2.1 subset: version document and flavors with extra specs.

Microversions: advertised 2.1..2.96; flavor bodies follow the requested version
(`description` from 2.55, `extra_specs` embedded from 2.61, `swap` 0 instead of "" from 2.75).
Unlike Nova, `quota:*` extra specs are validated at every microversion: the compiler reads
them, so an unknown or malformed one is refused instead of silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.common import Services, authorize, base_url, context, empty, json_body, ok, wrap
from qosplane.model.errors import INT32_MAX, InvalidInput, NotFound, parse_int
from qosplane.model.flavor import Flavor
from qosplane.openstack.nova import make_flavor
from qosplane.service.nova import NovaService
from qosplane.store.flavors import FlavorRepository

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)


def requested_version(request: Request) -> tuple[int, int]:
    header = request.headers.get("openstack-api-version", "")
    value = ""
    if header.startswith("compute "):
        value = header.removeprefix("compute ").strip()
    else:
        value = request.headers.get("x-openstack-nova-api-version", "").strip()
    if not value:
        return MIN_VERSION
    if value == "latest":
        return MAX_VERSION
    try:
        major, minor = (int(x) for x in value.split("."))
    except ValueError:
        raise InvalidInput("OpenStack-API-Version", value, "compute X.Y") from None
    if not MIN_VERSION <= (major, minor) <= MAX_VERSION:
        raise InvalidInput(
            "OpenStack-API-Version",
            value,
            f"a version from {MIN_VERSION[0]}.{MIN_VERSION[1]} to {MAX_VERSION[0]}.{MAX_VERSION[1]}",
        )
    return major, minor


def version_headers(request: Request, response: Response) -> None:
    """Every Nova response says the microversion it was served at, in both headers, and
    varies on them (nova/api/openstack/wsgi.py Resource.__call__); an unparseable
    request version leaves them out, as its 400 was served at none."""
    try:
        major, minor = requested_version(request)
    except InvalidInput:
        return
    response.headers["OpenStack-API-Version"] = f"compute {major}.{minor}"
    response.headers["X-OpenStack-Nova-API-Version"] = f"{major}.{minor}"
    response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def _version_doc(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
        "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base_url(request)}/compute/v2.1/"}],
    }


async def version(request: Request, services: Services) -> Response:
    return ok({"version": _version_doc(request)})


async def versions(request: Request, services: Services) -> Response:
    return ok({"versions": [_version_doc(request)]})


def flavor_json(
    request: Request,
    flavor: Flavor,
    is_public: bool,
    ver: tuple[int, int],
    description: str | None = None,
) -> dict[str, Any]:
    link = f"{base_url(request)}/compute/v2.1/flavors/{flavor.id}"
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "ram": flavor.ram_mb,
        "disk": flavor.disk_gb,
        "vcpus": flavor.vcpus,
        "swap": flavor.swap_mb if flavor.swap_mb or ver >= (2, 75) else "",
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": is_public,
        "rxtx_factor": 1.0,
        "links": [{"rel": "self", "href": link}],
    }
    if ver >= (2, 55):
        body["description"] = description
    if ver >= (2, 61):
        body["extra_specs"] = dict(flavor.extra_specs)
    return body


def _int_field(body: dict[str, Any], key: str, default: int | None, minimum: int) -> int:
    value = body.get(key, default)
    if value is None:
        raise InvalidInput(
            f"flavor.{key}", value, f"an integer from {minimum} to {INT32_MAX}", "required"
        )
    return parse_int(f"flavor.{key}", value, minimum, INT32_MAX)


# nova/api/validation/parameter_types.py `boolean`: a JSON boolean or one of these strings.
_TRUE = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes")
_FALSE = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")
# nova/api/openstack/compute/schemas/flavor_manage.py: a string or a number (stored as its
# string), 1 to 255 characters of letters, digits, '.', ' ', '_' and '-', no space at
# either end.
_FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")


def _nova_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE + _FALSE:
        return value in _TRUE
    raise InvalidInput(
        "flavor.os-flavor-access:is_public",
        value,
        "true, false or one of " + ", ".join(_TRUE + _FALSE),
    )


def _flavor_id(value: object) -> str:
    """The id as Nova stores it; "" when absent (a UUID is generated)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # tempest sends integers (data_utils.rand_int_id)
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not _FLAVOR_ID.match(value):
        raise InvalidInput(
            "flavor.id",
            value,
            "null, a number, or 1 to 255 letters, digits, '.', ' ', '_' or '-' (no space at "
            "either end)",
        )
    return value


async def create_flavor(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    authorize(services, ctx, "os_compute_api:os-flavor-manage:create")
    body = await json_body(request, "flavor")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise InvalidInput("flavor.name", name, "a string of 1 to 255 characters")
    flavor_id = _flavor_id(body.get("id"))
    is_public = _nova_boolean(body.get("os-flavor-access:is_public", True))
    description = _description(body, ver)
    flavor = make_flavor(
        name=name.strip(),
        vcpus=_int_field(body, "vcpus", None, 1),
        ram_mb=_int_field(body, "ram", None, 1),
        disk_gb=_int_field(body, "disk", 0, 0),
        extra_specs={},
        ephemeral_gb=_int_field(body, "OS-FLV-EXT-DATA:ephemeral", 0, 0),
        swap_mb=_int_field(body, "swap", 0, 0) if body.get("swap") != "" else 0,
        flavor_id=flavor_id,
    )
    with services.db.transaction() as s:
        created = FlavorRepository(s).create(flavor, is_public=is_public, description=description)
    return ok({"flavor": flavor_json(request, created, is_public, ver, description)})


def _description(body: dict[str, Any], ver: tuple[int, int]) -> str | None:
    """nova/api/openstack/compute/schemas/flavor_manage.py: from 2.55, a string of at most
    65535 printable characters, or null; before, an unknown attribute (400)."""
    if "description" not in body:
        return None
    value = body["description"]
    if ver < (2, 55):
        raise InvalidInput("flavor.description", value, "nothing before microversion 2.55")
    if value is not None and (
        not isinstance(value, str) or len(value) > 65535 or not value.isprintable()
    ):
        raise InvalidInput(
            "flavor.description", value, "printable text of at most 65535 characters, or null"
        )
    return value


async def update_flavor(request: Request, services: Services) -> Response:
    """PUT /flavors/{id} (2.55): the description is all that changes; before 2.55 the
    method does not exist (nova's VersionNotFoundForAPIMethod, 404)."""
    ctx = context(request, services)
    ver = requested_version(request)
    if ver < (2, 55):
        raise NotFound("resource", request.url.path)
    authorize(services, ctx, "os_compute_api:os-flavor-manage:update")
    body = await json_body(request, "flavor")
    if set(body) != {"description"}:
        raise InvalidInput("flavor", sorted(body), "exactly the key description")
    description = _description(body, ver)
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        flavor = repo.get(request.path_params["flavor_id"])
        repo.describe(flavor.id, description)
        public = repo.is_public(flavor.id)
    return ok({"flavor": flavor_json(request, flavor, public, ver, description)})


def _public_filter(request: Request, is_admin: bool) -> bool | None:
    """None: public and private; True: public only (Nova's is_public query semantics)."""
    raw = request.query_params.get("is_public")
    if raw is None:
        return True
    if raw.lower() == "none":
        return None if is_admin else True
    if raw.lower() in ("true", "1", "yes", "t"):
        return True
    if raw.lower() in ("false", "0", "no", "f"):
        return False
    raise InvalidInput("is_public", raw, "true, false or none")


# nova/api/openstack/compute/schemas/flavors.py VALID_SORT_KEYS, those qosplane keeps.
_SORT_KEYS: dict[str, Callable[[Flavor], Any]] = {
    "flavorid": lambda f: f.id,
    "id": lambda f: f.id,
    "name": lambda f: f.name,
    "memory_mb": lambda f: f.ram_mb,
    "root_gb": lambda f: f.disk_gb,
    "vcpus": lambda f: f.vcpus,
    "ephemeral_gb": lambda f: f.ephemeral_gb,
    "swap": lambda f: f.swap_mb,
}
# nova.conf [api] max_limit
MAX_LIMIT = 1000


def _minimum(request: Request, key: str) -> int | None:
    """minRam / minDisk: Nova refuses anything but a non-negative integer (400)."""
    raw = request.query_params.get(key)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidInput(key, raw, f"a non-negative integer (Invalid {key} filter [{raw}])")
    return int(raw)


def _page_of(request: Request, rows: list[Any], key: Callable[[Any], str]) -> tuple[list[Any], int]:
    """Nova's limit and marker (nova/api/openstack/common.py get_limit_and_marker): the page
    after the marker's flavor id, at most `limit` long; the limit used, for the next link."""
    q = request.query_params
    raw_limit = q.get("limit", str(MAX_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit():
        raise InvalidInput("limit", raw_limit, "an integer of 0 or more")
    limit = min(int(raw_limit), MAX_LIMIT)
    marker = q.get("marker")
    if marker is not None:
        ids = [key(r) for r in rows]
        if marker not in ids:
            raise InvalidInput("marker", marker, "the id of a flavor in the list", "not found")
        rows = rows[ids.index(marker) + 1 :]
    return rows[:limit], limit


async def list_flavors(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    wanted = _public_filter(request, ctx.is_admin)
    detail = request.url.path.rstrip("/").endswith("/detail")
    min_ram_mb, min_disk_gb = _minimum(request, "minRam"), _minimum(request, "minDisk")
    sort_key = request.query_params.get("sort_key", "flavorid")
    sort_dir = request.query_params.get("sort_dir", "asc")
    if sort_key not in _SORT_KEYS:
        raise InvalidInput("sort_key", sort_key, f"one of {', '.join(_SORT_KEYS)}")
    if sort_dir not in ("asc", "desc"):
        raise InvalidInput("sort_dir", sort_dir, "asc or desc")
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        rows = [(f, repo.is_public(f.id), repo.can_use(f.id, ctx.scope)) for f in repo.list()]
        described = {f.id: repo.description(f.id) for f, _, _ in rows} if ver >= (2, 55) else {}
    chosen = []
    for flavor, public, usable in rows:
        # Admins filter with is_public; a project sees the public flavors and the private
        # ones shared with it, whatever it asks (Nova's flavor query for non-admins).
        if ctx.is_admin:
            if wanted is not None and public != wanted:
                continue
        elif not usable:
            continue
        if min_ram_mb is not None and flavor.ram_mb < min_ram_mb:
            continue
        if min_disk_gb is not None and flavor.disk_gb < min_disk_gb:
            continue
        chosen.append((flavor, public))
    by = _SORT_KEYS[sort_key]
    chosen.sort(key=lambda fp: (by(fp[0]), fp[0].id), reverse=sort_dir == "desc")
    page, limit = _page_of(request, chosen, lambda fp: fp[0].id)
    out = []
    for flavor, public in page:
        shown = flavor_json(request, flavor, public, ver, described.get(flavor.id))
        # nova/api/openstack/compute/views/flavors.py basic: id, name, links, and the
        # description from 2.55.
        summary = (
            ("id", "name", "links", "description") if ver >= (2, 55) else ("id", "name", "links")
        )
        out.append(shown if detail else {k: shown[k] for k in summary})
    body: dict[str, Any] = {"flavors": out}
    if page and len(page) == limit:
        # nova/api/openstack/common.py ViewBuilder._get_collection_links
        params = {k: v for k, v in request.query_params.items() if k != "marker"}
        params |= {"limit": str(limit), "marker": page[-1][0].id}
        href = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
        body["flavors_links"] = [{"rel": "next", "href": href}]
    return ok(body)


async def show_flavor(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    ver = requested_version(request)
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        flavor = repo.get(request.path_params["flavor_id"])
        if not repo.can_use(flavor.id, ctx.scope):
            raise NotFound("flavor", flavor.id)
        public = repo.is_public(flavor.id)
        description = repo.description(flavor.id)
    return ok({"flavor": flavor_json(request, flavor, public, ver, description)})


async def delete_flavor(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-flavor-manage:delete")
    with services.db.transaction() as s:
        FlavorRepository(s).delete(request.path_params["flavor_id"])
    return empty(202)


async def flavor_access(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-flavor-access")
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        flavor = repo.get(request.path_params["flavor_id"])
        if repo.is_public(flavor.id):
            raise NotFound("Access list", "for a public flavor (not available)")
        projects = repo.projects_with_access(flavor.id)
    return ok({"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p} for p in projects]})


async def flavor_action(request: Request, services: Services) -> Response:
    """addTenantAccess / removeTenantAccess: `flavor set|unset --project`."""
    ctx = context(request, services)
    body = await json_body(request)
    if len(body) != 1 or next(iter(body)) not in ("addTenantAccess", "removeTenantAccess"):
        raise InvalidInput("action", sorted(body), "addTenantAccess or removeTenantAccess")
    action, args = next(iter(body.items()))
    authorize(services, ctx, f"os_compute_api:os-flavor-access:{action}")
    tenant = args.get("tenant") if isinstance(args, dict) else None
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 255:
        raise InvalidInput(f"{action}.tenant", tenant, "a project id")
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        flavor = repo.get(request.path_params["flavor_id"])
        if action == "addTenantAccess":
            repo.add_access(flavor.id, tenant)
        else:
            repo.remove_access(flavor.id, tenant)
        projects = repo.projects_with_access(flavor.id)
    return ok({"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p} for p in projects]})


def _usable_flavor(request: Request, services: Services) -> Flavor:
    """The path's flavor if the caller may use it: a private flavor not shared with the
    caller's project does not exist for it (404), its extra specs included, as in Nova
    (flavors_extraspecs.py reads the flavor through the same access-checked lookup as
    `flavor show`)."""
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = FlavorRepository(s)
        flavor = repo.get(request.path_params["flavor_id"])
        if not repo.can_use(flavor.id, ctx.scope):
            raise NotFound("flavor", flavor.id)
    return flavor


async def get_extra_specs(request: Request, services: Services) -> Response:
    return ok({"extra_specs": dict(_usable_flavor(request, services).extra_specs)})


async def get_extra_spec(request: Request, services: Services) -> Response:
    key = request.path_params["key"]
    flavor = _usable_flavor(request, services)
    if key not in flavor.extra_specs:
        raise NotFound("flavor extra spec", key)
    return ok({key: flavor.extra_specs[key]})


async def set_extra_specs(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-flavor-extra-specs:create")
    specs = await json_body(request, "extra_specs")
    with services.db.transaction() as s:
        flavor = NovaService(s).set_extra_specs(request.path_params["flavor_id"], specs)
    return ok({"extra_specs": {k: flavor.extra_specs[k] for k in specs}})


async def update_extra_spec(request: Request, services: Services) -> Response:
    """PUT one key: the body is exactly that key (nova/api/openstack/compute/
    flavors_extraspecs.py update: "Request body and URI mismatch", "Request body contains
    too many items")."""
    authorize(services, context(request, services), "os_compute_api:os-flavor-extra-specs:update")
    key = request.path_params["key"]
    body = await json_body(request)
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
        flavor = NovaService(s).set_extra_specs(request.path_params["flavor_id"], body)
    return ok({key: flavor.extra_specs[key]})


async def delete_extra_spec(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-flavor-extra-specs:delete")
    with services.db.transaction() as s:
        NovaService(s).unset_extra_specs(
            request.path_params["flavor_id"], [request.path_params["key"]]
        )
    return empty(200)


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("compute", services, handler, version_headers)

    base = "/compute/v2.1"
    return [
        Route("/compute", w(versions), methods=["GET"]),
        Route("/compute/", w(versions), methods=["GET"]),
        Route(base, w(version), methods=["GET"]),
        Route(base + "/", w(version), methods=["GET"]),
        Route(base + "/flavors", w(list_flavors), methods=["GET"]),
        Route(base + "/flavors", w(create_flavor), methods=["POST"]),
        Route(base + "/flavors/detail", w(list_flavors), methods=["GET"]),
        Route(base + "/flavors/{flavor_id}", w(show_flavor), methods=["GET"]),
        Route(base + "/flavors/{flavor_id}", w(delete_flavor), methods=["DELETE"]),
        Route(base + "/flavors/{flavor_id}", w(update_flavor), methods=["PUT"]),
        Route(base + "/flavors/{flavor_id}/os-flavor-access", w(flavor_access), methods=["GET"]),
        Route(base + "/flavors/{flavor_id}/action", w(flavor_action), methods=["POST"]),
        Route(base + "/flavors/{flavor_id}/os-extra_specs", w(get_extra_specs), methods=["GET"]),
        Route(base + "/flavors/{flavor_id}/os-extra_specs", w(set_extra_specs), methods=["POST"]),
        Route(
            base + "/flavors/{flavor_id}/os-extra_specs/{key}", w(get_extra_spec), methods=["GET"]
        ),
        Route(
            base + "/flavors/{flavor_id}/os-extra_specs/{key}",
            w(update_extra_spec),
            methods=["PUT"],
        ),
        Route(
            base + "/flavors/{flavor_id}/os-extra_specs/{key}",
            w(delete_extra_spec),
            methods=["DELETE"],
        ),
    ]
