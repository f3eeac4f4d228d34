"""Hosts as Nova shows them: hypervisors, aggregates and availability zones.

Hosts are the registered agents (`qosplane.api.native`); Nova's zones come from aggregates.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.common import Services, authorize, context, empty, json_body, name_field, ok, wrap
from qosplane.api.nova.flavors import requested_version, version_headers
from qosplane.model.errors import InvalidInput
from qosplane.store.hosts import HostRepository
from qosplane.store.views import AggregateView, HostView

WATCH_TIMEOUT_MAX_S = 300


# ---- Nova: hypervisors -----------------------------------------------------------------
def _hypervisor_json(row: HostView, ver: tuple[int, int], up: bool, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id if ver >= (2, 53) else row.number,
        "hypervisor_hostname": row.name,
        "state": "up" if up else "down",
        "status": "enabled",
    }
    if detail:
        facts = json.loads(row.facts)
        out |= {
            "hypervisor_type": "QEMU",
            "hypervisor_version": 7002000,
            "host_ip": "127.0.0.1",
            "service": {"host": row.name, "id": row.id, "disabled_reason": None},
            "qosplane:facts": facts,
        }
        if ver < (2, 88):
            out |= {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "running_vms": 0}
    return out


async def list_hypervisors(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    authorize(services, ctx, "os_compute_api:os-hypervisors:list")
    ver = requested_version(request)
    detail = request.url.path.rstrip("/").endswith("/detail")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        rows = repo.all()
        pattern = request.query_params.get("hypervisor_hostname_pattern")
        if pattern:
            rows = [r for r in rows if pattern in r.name]
        return ok({"hypervisors": [_hypervisor_json(r, ver, repo.is_up(r), detail) for r in rows]})


async def show_hypervisor(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    authorize(services, ctx, "os_compute_api:os-hypervisors:show")
    ver = requested_version(request)
    with services.db.transaction() as s:
        repo = HostRepository(s)
        row = repo.by_ref(request.path_params["ref"])
        return ok({"hypervisor": _hypervisor_json(row, ver, repo.is_up(row), True)})


# ---- Nova: aggregates ------------------------------------------------------------------
def _aggregate_json(repo: HostRepository, row: AggregateView) -> dict[str, Any]:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "name": row.name,
        "availability_zone": row.availability_zone,
        "hosts": repo.aggregate_hosts(row.id),
        "metadata": json.loads(row.metadata_json),
        "created_at": row.created_at,
        "updated_at": None,
        "deleted_at": None,
        "deleted": False,
    }


async def list_aggregates(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:index")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregates": [_aggregate_json(repo, r) for r in repo.aggregates()]})


async def create_aggregate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:create")
    body = await json_body(request, "aggregate")
    name = name_field(body.get("name"), "aggregate.name")
    zone = body.get("availability_zone")
    if zone is not None:
        zone = name_field(zone, "aggregate.availability_zone")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregate": _aggregate_json(repo, repo.create_aggregate(name, zone))})


async def show_aggregate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:show")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregate": _aggregate_json(repo, repo.aggregate(request.path_params["ref"]))})


async def update_aggregate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:update")
    body = await json_body(request, "aggregate")
    name = name_field(body["name"], "aggregate.name") if "name" in body else None
    zone = (
        name_field(body["availability_zone"], "aggregate.availability_zone")
        if "availability_zone" in body
        else None
    )
    with services.db.transaction() as s:
        repo = HostRepository(s)
        agg = repo.aggregate(request.path_params["ref"])
        with_hosts = repo.aggregate_hosts(agg.id)
        row = repo.update_aggregate(agg.id, name, zone)
        _bump_hosts(repo, with_hosts)
        return ok({"aggregate": _aggregate_json(repo, row)})


async def delete_aggregate(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:delete")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        repo.delete_aggregate(repo.aggregate(request.path_params["ref"]).id)
    return empty(200)


def _bump_hosts(repo: HostRepository, hosts: list[str]) -> None:
    # Zone membership is part of what `explain` shows for the host's servers.
    for host in hosts:
        repo.bump(host)


async def aggregate_action(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "os_compute_api:os-aggregates:action")
    body = await json_body(request)
    if len(body) != 1:
        raise InvalidInput(
            "action", sorted(body), "exactly one of add_host, remove_host, set_metadata"
        )
    action, args = next(iter(body.items()))
    if not isinstance(args, dict):
        raise InvalidInput(action, args, "a JSON object")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        agg = repo.aggregate(request.path_params["ref"])
        if action in ("add_host", "remove_host"):
            host = name_field(args.get("host"), f"{action}.host")
            if action == "add_host":
                repo.add_host(agg.id, host)
            else:
                repo.remove_host(agg.id, host)
            _bump_hosts(repo, [host])
        elif action == "set_metadata":
            metadata = args.get("metadata")
            if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str))
                for k, v in metadata.items()
            ):
                raise InvalidInput(
                    "set_metadata.metadata", metadata, "an object of string (or null) values"
                )
            repo.set_metadata(agg.id, metadata)
            _bump_hosts(repo, repo.aggregate_hosts(agg.id))
        else:
            raise InvalidInput("action", action, "add_host, remove_host or set_metadata")
        return ok({"aggregate": _aggregate_json(repo, repo.aggregate(str(agg.id)))})


# ---- Nova: availability zones ----------------------------------------------------------
async def list_zones(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    detail = request.url.path.rstrip("/").endswith("/detail")
    if detail:  # host names: nova/policies/availability_zone.py, ...:detail is ADMIN
        authorize(services, ctx, "os_compute_api:os-availability-zone:detail")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        zones = repo.zones()
        info = []
        for zone, hosts in sorted(zones.items()):
            entry: dict[str, Any] = {
                "zoneName": zone,
                "zoneState": {"available": True},
                "hosts": None,
            }
            if detail:
                rows = {h: repo.get(h) for h in hosts}
                entry["hosts"] = {
                    h: {
                        "nova-compute": {
                            "available": repo.is_up(r),
                            "active": True,
                            "updated_at": r.heartbeat_at,
                        }
                    }
                    for h, r in rows.items()
                }
            info.append(entry)
    return ok({"availabilityZoneInfo": info})


def routes(services: Services) -> list[Route]:
    def nova(handler: Any) -> Any:
        return wrap("compute", services, handler, version_headers)

    base = "/compute/v2.1"
    return [
        Route(base + "/os-hypervisors", nova(list_hypervisors), methods=["GET"]),
        Route(base + "/os-hypervisors/detail", nova(list_hypervisors), methods=["GET"]),
        Route(base + "/os-hypervisors/{ref}", nova(show_hypervisor), methods=["GET"]),
        Route(base + "/os-aggregates", nova(list_aggregates), methods=["GET"]),
        Route(base + "/os-aggregates", nova(create_aggregate), methods=["POST"]),
        Route(base + "/os-aggregates/{ref}", nova(show_aggregate), methods=["GET"]),
        Route(base + "/os-aggregates/{ref}", nova(update_aggregate), methods=["PUT"]),
        Route(base + "/os-aggregates/{ref}", nova(delete_aggregate), methods=["DELETE"]),
        Route(base + "/os-aggregates/{ref}/action", nova(aggregate_action), methods=["POST"]),
        Route(base + "/os-availability-zone", nova(list_zones), methods=["GET"]),
        Route(base + "/os-availability-zone/detail", nova(list_zones), methods=["GET"]),
    ]
