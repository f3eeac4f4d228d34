"""Hosts as Nova shows them (hypervisors, aggregates, availability zones) and as agents use
them (the native /qosplane/v1/hosts: register, heartbeat, watch, report).

The watch is design.md §3: `GET /qosplane/v1/hosts/NAME/watch?since=REV&timeout=S` answers
at once with the host's desired state when its revision differs from `since`, otherwise it
waits up to S seconds for a change and answers `"changed": false` when none came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.common import Services, context, empty, json_body, ok, wrap
from qosplane.api.compute import requested_version
from qosplane.api.servers import visible_server
from qosplane.model.errors import INT32_MAX, InvalidInput, parse_int
from qosplane.service.hosts import HostService
from qosplane.store.hosts import HostRepository
from qosplane.store.servers import ServerRepository
from qosplane.store.tables import AggregateRow, HostRow

WATCH_TIMEOUT_MAX_S = 300
REPORT_STATUSES = ("applied", "partial", "failed", "removed")


# ---- Nova: hypervisors -----------------------------------------------------------------
def _hypervisor_json(row: HostRow, ver: tuple[int, int], up: bool, detail: bool) -> dict[str, Any]:
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
    ctx.require_admin("os_compute_api:os-hypervisors:list")
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
    ctx.require_admin("os_compute_api:os-hypervisors:show")
    ver = requested_version(request)
    with services.db.transaction() as s:
        repo = HostRepository(s)
        row = repo.by_ref(request.path_params["ref"])
        return ok({"hypervisor": _hypervisor_json(row, ver, repo.is_up(row), True)})


# ---- Nova: aggregates ------------------------------------------------------------------
def _aggregate_json(repo: HostRepository, row: AggregateRow) -> dict[str, Any]:
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


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 255:
        raise InvalidInput(key, value, "a string of 1 to 255 characters")
    return value.strip()


async def list_aggregates(request: Request, services: Services) -> Response:
    context(request, services).require_admin("os_compute_api:os-aggregates:index")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregates": [_aggregate_json(repo, r) for r in repo.aggregates()]})


async def create_aggregate(request: Request, services: Services) -> Response:
    context(request, services).require_admin("os_compute_api:os-aggregates:create")
    body = await json_body(request, "aggregate")
    name = _name(body.get("name"), "aggregate.name")
    zone = body.get("availability_zone")
    if zone is not None:
        zone = _name(zone, "aggregate.availability_zone")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregate": _aggregate_json(repo, repo.create_aggregate(name, zone))})


async def show_aggregate(request: Request, services: Services) -> Response:
    context(request, services).require_admin("os_compute_api:os-aggregates:show")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"aggregate": _aggregate_json(repo, repo.aggregate(request.path_params["ref"]))})


async def update_aggregate(request: Request, services: Services) -> Response:
    context(request, services).require_admin("os_compute_api:os-aggregates:update")
    body = await json_body(request, "aggregate")
    name = _name(body["name"], "aggregate.name") if "name" in body else None
    zone = (
        _name(body["availability_zone"], "aggregate.availability_zone")
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
    context(request, services).require_admin("os_compute_api:os-aggregates:delete")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        repo.delete_aggregate(repo.aggregate(request.path_params["ref"]).id)
    return empty(200)


def _bump_hosts(repo: HostRepository, hosts: list[str]) -> None:
    # Zone membership is part of what `explain` shows for the host's servers.
    for host in hosts:
        repo.bump(host)


async def aggregate_action(request: Request, services: Services) -> Response:
    context(request, services).require_admin("os_compute_api:os-aggregates:action")
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
            host = _name(args.get("host"), f"{action}.host")
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
    context(request, services)
    detail = request.url.path.rstrip("/").endswith("/detail")
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


# ---- native: hosts and the watch -------------------------------------------------------
def _host_json(repo: HostRepository, row: HostRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "id": row.id,
        "zone": repo.zone_of(row.name),
        "state": "up" if repo.is_up(row) else "down",
        "registered_at": row.registered_at,
        "heartbeat_at": row.heartbeat_at,
        "revision": row.revision,
        "applied_revision": row.applied_revision,
        "facts": json.loads(row.facts),
    }


async def register_host(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:hosts:register")
    body = await json_body(request, "host")
    facts = body.get("facts", {})
    if not isinstance(facts, dict):
        raise InvalidInput("host.facts", facts, "a mapping like the case file's `host`")
    with services.db.transaction() as s:
        row = HostService(s).register(_name(body.get("name"), "host.name"), facts)
        return ok({"host": _host_json(HostRepository(s), row)})


async def list_hosts(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:hosts:list")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"hosts": [_host_json(repo, r) for r in repo.all()]})


async def show_host(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:hosts:show")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"host": _host_json(repo, repo.get(request.path_params["name"]))})


async def heartbeat(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:hosts:heartbeat")
    body = await json_body(request)
    applied = body.get("applied_revision")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        row = repo.heartbeat(
            request.path_params["name"],
            None if applied is None else parse_int("applied_revision", applied, 0, INT32_MAX),
        )
        return ok({"host": _host_json(repo, row)})


def desired_state(services: Services, name: str, since: int) -> dict[str, Any] | int:
    """The host's desired state when its revision differs from `since`, else the revision."""
    with services.db.transaction() as s:
        repo = HostRepository(s)
        row = repo.get(name)
        if row.revision == since:
            return row.revision
        servers = ServerRepository(s)
        return {
            "host": name,
            "revision": row.revision,
            "changed": True,
            "servers": [
                {
                    "id": r.id,
                    "name": r.name,
                    "plan_revision": r.plan_revision,
                    "plan": json.loads(r.plan_json),
                    "ports": servers.wiring(r),
                    "volumes": servers.volume_wiring(r),
                }
                for r in repo.servers(name)
            ],
        }


async def watch(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:hosts:watch")
    name = request.path_params["name"]
    since = parse_int("since", request.query_params.get("since", "-1"), -1, INT32_MAX)
    timeout_s = parse_int(
        "timeout", request.query_params.get("timeout", "30"), 0, WATCH_TIMEOUT_MAX_S
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        event = services.watch.event(name)  # before the read: a bump after it still wakes us
        state = desired_state(services, name, since)
        if isinstance(state, dict):
            return ok(state)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return ok({"host": name, "revision": state, "changed": False})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(remaining, services.watch.recheck_s))


async def report(request: Request, services: Services) -> Response:
    """The agent's outcome for a revision: per server a status and per rule what happened."""
    context(request, services).require_admin("qosplane:hosts:report")
    body = await json_body(request)
    revision = parse_int("revision", body.get("revision"), 0, INT32_MAX)
    reports = body.get("servers", [])
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        raise InvalidInput("servers", reports, "a list of server reports")
    for i, item in enumerate(reports):
        if item.get("status") not in REPORT_STATUSES:
            raise InvalidInput(f"servers[{i}].status", item.get("status"), str(REPORT_STATUSES))
        parse_int(f"servers[{i}].plan_revision", item.get("plan_revision"), 0, INT32_MAX)
    with services.db.transaction() as s:
        repo = HostRepository(s)
        name = request.path_params["name"]
        repo.heartbeat(name, revision)
        servers = ServerRepository(s)
        on_host = {r.id: r for r in repo.servers(name)}
        for item in reports:
            row = on_host.get(str(item.get("id")))
            if row is not None:  # a server deleted meanwhile: nothing to record
                servers.record_report(row, item)
    return empty(204)


async def server_status(request: Request, services: Services) -> Response:
    """What the agent reported for the server and the last measurement of its limits."""
    ctx = context(request, services)
    with services.db.transaction() as s:
        servers = ServerRepository(s)
        row = visible_server(servers, ctx, request.path_params["server_id"])
        return ok(
            {
                "server": {"id": row.id, "status": row.status, "host": row.host},
                "plan_revision": row.plan_revision,
                "report": servers.report(row),
                "measurements": json.loads(row.measurements or "{}"),
            }
        )


async def record_measurements(request: Request, services: Services) -> Response:
    context(request, services).require_admin("qosplane:servers:measure")
    body = await json_body(request)
    verdicts = body.get("verdicts")
    if not isinstance(verdicts, list) or not all(isinstance(v, dict) for v in verdicts):
        raise InvalidInput("verdicts", verdicts, "a list of verdict objects")
    with services.db.transaction() as s:
        row = ServerRepository(s).get(request.path_params["server_id"])
        row.measurements = json.dumps(
            {"measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "verdicts": verdicts}
        )
    return empty(204)


def routes(services: Services) -> list[Route]:
    def nova(handler: Any) -> Any:
        return wrap("compute", services, handler)

    base = "/compute/v2.1"
    native = "/qosplane/v1/hosts"
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
        Route(native, nova(list_hosts), methods=["GET"]),
        Route(native, nova(register_host), methods=["POST"]),
        Route(native + "/{name}", nova(show_host), methods=["GET"]),
        Route(native + "/{name}/heartbeat", nova(heartbeat), methods=["POST"]),
        Route(native + "/{name}/watch", nova(watch), methods=["GET"]),
        Route(native + "/{name}/report", nova(report), methods=["PUT"]),
        Route("/qosplane/v1/servers/{server_id}/status", nova(server_status), methods=["GET"]),
        Route(
            "/qosplane/v1/servers/{server_id}/measurements",
            nova(record_measurements),
            methods=["PUT"],
        ),
    ]
