"""Glance v2 subset: image records (no image data), enough for `server create --image`."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.common import Services, authorize, base_url, context, empty, json_body, ok, wrap
from qosplane.model.errors import InvalidInput
from qosplane.store.records import RecordRepository

VISIBILITIES = ("public", "private", "shared", "community")
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")


async def versions(request: Request, services: Services) -> Response:
    return ok(
        {
            "versions": [
                {
                    "id": "v2.17",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{base_url(request)}/image/v2/"}],
                }
            ]
        },
        status=300,
    )


async def create_image(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or len(name) > 255:
        raise InvalidInput("name", name, "a string of at most 255 characters")
    disk_format = body.get("disk_format", "raw")
    if disk_format not in DISK_FORMATS:
        raise InvalidInput("disk_format", disk_format, "one of " + ", ".join(DISK_FORMATS))
    visibility = body.get("visibility", "shared")
    if visibility not in VISIBILITIES:
        raise InvalidInput("visibility", visibility, "one of " + ", ".join(VISIBILITIES))
    if visibility == "public":
        authorize(services, ctx, "publicize_image")
    minimum: dict[str, int] = {}
    for key in ("min_ram", "min_disk"):
        value = body.get(key, 0)
        # glance/api/v2/images.py schema: integers of 0 or more (MiB, GiB).
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1:
            raise InvalidInput(key, value, "an integer from 0 to 2147483647")
        minimum[key] = value
    image_id = str(body.get("id") or uuid.uuid4())
    image: dict[str, Any] = {
        "id": image_id,
        "name": name,
        "status": "queued",
        "visibility": visibility,
        "disk_format": disk_format,
        "container_format": body.get("container_format", "bare"),
        "owner": ctx.project_id,
        "min_disk": minimum["min_disk"],
        "min_ram": minimum["min_ram"],
        "protected": False,
        "tags": [],
        "size": None,
        "checksum": None,
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }
    with services.db.transaction() as s:
        RecordRepository(s, "image").create(image_id, name, ctx.project_id, image)
    return ok(image, status=201)


async def list_images(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    name = request.query_params.get("name")
    with services.db.transaction() as s:
        repo = RecordRepository(s, "image", ctx.scope)
        images = repo.find(name) if name is not None else repo.list()
    return ok({"images": images, "schema": "/v2/schemas/images", "first": "/v2/images"})


async def show_image(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        return ok(RecordRepository(s, "image", ctx.scope).get(request.path_params["image_id"]))


async def upload_image(request: Request, services: Services) -> Response:
    """Image data is not kept (records only); the upload marks the image active."""
    ctx = context(request, services)
    image_id = request.path_params["image_id"]
    with services.db.transaction() as s:
        repo = RecordRepository(s, "image", ctx.scope)
        image = repo.get(image_id)
        image["status"] = "active"
        repo.update(image_id, image)
    return empty(204)


async def delete_image(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        RecordRepository(s, "image", ctx.scope).delete(request.path_params["image_id"])
    return empty(204)


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("image", services, handler)

    return [
        Route("/image", w(versions), methods=["GET"]),
        Route("/image/", w(versions), methods=["GET"]),
        Route("/image/v2/images", w(list_images), methods=["GET"]),
        Route("/image/v2/images", w(create_image), methods=["POST"]),
        Route("/image/v2/images/{image_id}", w(show_image), methods=["GET"]),
        Route("/image/v2/images/{image_id}", w(delete_image), methods=["DELETE"]),
        Route("/image/v2/images/{image_id}/file", w(upload_image), methods=["PUT"]),
    ]
