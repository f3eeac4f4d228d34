"""The native /qosplane/v1 API: what agents use (register, heartbeat, watch, report), a
server's plan with its wiring, its status and stored measurements.

The watch is design.md §3: `GET /qosplane/v1/hosts/NAME/watch?since=REV&timeout=S` answers
at once with the host's desired state when its revision differs from `since`, otherwise it
waits up to S seconds for a change and answers `"changed": false` when none came. Errors are
rendered in Nova's shape, as the agents' client expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qosplane.api.common import (
    AGENT_MAX_BODY_BYTES,
    Services,
    authorize,
    context,
    empty,
    json_body,
    name_field,
    ok,
    wrap,
)
from qosplane.api.nova.servers import visible_server
from qosplane.model.errors import INT32_MAX, InvalidInput, NotFound, parse_int
from qosplane.model.plan import DesiredServer
from qosplane.model.report import PlacedServer, ServerReport, ServerStatus, Verdict
from qosplane.openstack.case import host_facts_from_case
from qosplane.service.hosts import HostService
from qosplane.store.hosts import HostRepository
from qosplane.store.servers import ServerRepository
from qosplane.store.views import HostView

WATCH_TIMEOUT_MAX_S = 300


# ---- native: hosts and the watch -------------------------------------------------------
def _host_json(repo: HostRepository, row: HostView) -> dict[str, Any]:
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
    authorize(services, context(request, services), "qosplane:hosts:register")
    body = await json_body(request, "host", AGENT_MAX_BODY_BYTES)
    name = name_field(body.get("name"), "host.name")
    facts = body.get("facts", {})
    if not isinstance(facts, dict):
        raise InvalidInput("host.facts", facts, "a mapping like the case file's `host`")
    parsed = host_facts_from_case({**facts, "hostname": name})  # the one edge facts are read at
    with services.db.transaction() as s:
        row = HostService(s).register(name, parsed)
        return ok({"host": _host_json(HostRepository(s), row)})


async def list_hosts(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "qosplane:hosts:list")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"hosts": [_host_json(repo, r) for r in repo.all()]})


async def show_host(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "qosplane:hosts:show")
    with services.db.transaction() as s:
        repo = HostRepository(s)
        return ok({"host": _host_json(repo, repo.get(request.path_params["name"]))})


async def heartbeat(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "qosplane:hosts:heartbeat")
    body = await json_body(request, max_bytes=AGENT_MAX_BODY_BYTES)
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
                    "plan": servers.plan_wire(r),
                    "ports": [p.to_json() for p in servers.wiring(r)],
                    "volumes": [v.to_json() for v in servers.volume_wiring(r)],
                }
                for r in repo.servers(name)
            ],
        }


async def watch(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "qosplane:hosts:watch")
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
    authorize(services, context(request, services), "qosplane:hosts:report")
    body = await json_body(request, max_bytes=AGENT_MAX_BODY_BYTES)
    revision = parse_int("revision", body.get("revision"), 0, INT32_MAX)
    items = body.get("servers", [])
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise InvalidInput("servers", items, "a list of server reports")
    # Read whole before anything is stored: one bad report refuses the request, keeps nothing.
    reports = [ServerReport.from_json(item, f"servers[{i}]") for i, item in enumerate(items)]
    with services.db.transaction() as s:
        repo = HostRepository(s)
        name = request.path_params["name"]
        repo.heartbeat(name, revision)
        servers = ServerRepository(s)
        on_host = {r.id: r for r in repo.servers(name)}
        for item in reports:
            row = on_host.get(item.id)
            if row is not None:  # a server deleted meanwhile: nothing to record
                servers.record_report(row, item)
    return empty(204)


async def server_status(request: Request, services: Services) -> Response:
    """What the agent reported for the server and the last measurement of its limits."""
    ctx = context(request, services)
    with services.db.transaction() as s:
        servers = ServerRepository(s)
        row = visible_server(servers, ctx, request.path_params["server_id"])
        status = ServerStatus(
            row.id,
            row.status,
            row.host or "",
            row.plan_revision,
            servers.report(row),
            servers.measurements(row),
        )
        return ok(status.to_json())


async def record_measurements(request: Request, services: Services) -> Response:
    authorize(services, context(request, services), "qosplane:servers:measure")
    body = await json_body(request, max_bytes=AGENT_MAX_BODY_BYTES)
    items = body.get("verdicts")
    if not isinstance(items, list) or not all(isinstance(v, dict) for v in items):
        raise InvalidInput("verdicts", items, "a list of verdict objects")
    verdicts = [Verdict.from_json(v, f"verdicts[{i}]") for i, v in enumerate(items)]
    with services.db.transaction() as s:
        repo = ServerRepository(s)
        repo.record_measurements(repo.get(request.path_params["server_id"]), verdicts)
    return empty(204)


async def server_plan(request: Request, services: Services) -> Response:
    ctx = context(request, services)
    with services.db.transaction() as s:
        repo = ServerRepository(s)
        ref = request.path_params["server_id"]
        try:
            row = repo.get(ref)
        except NotFound:
            matches = repo.find(ref, None if ctx.is_admin else ctx.project_id)
            if len(matches) != 1:
                raise
            row = matches[0]
        if row.project_id != ctx.project_id and not ctx.is_admin:
            raise NotFound("Server", ref)
        desired = DesiredServer(
            row.id,
            row.name,
            row.plan_revision,
            repo.plan_of(row),
            tuple(repo.wiring(row)),
            tuple(repo.volume_wiring(row)),
        )
        return ok(PlacedServer(desired, row.status, row.host or "").to_json())


def routes(services: Services) -> list[Route]:
    def native(handler: Any) -> Any:
        return wrap("compute", services, handler)

    hosts = "/qosplane/v1/hosts"
    servers = "/qosplane/v1/servers/{server_id}"
    return [
        Route(hosts, native(list_hosts), methods=["GET"]),
        Route(hosts, native(register_host), methods=["POST"]),
        Route(hosts + "/{name}", native(show_host), methods=["GET"]),
        Route(hosts + "/{name}/heartbeat", native(heartbeat), methods=["POST"]),
        Route(hosts + "/{name}/watch", native(watch), methods=["GET"]),
        Route(hosts + "/{name}/report", native(report), methods=["PUT"]),
        Route(servers + "/plan", native(server_plan), methods=["GET"]),
        Route(servers + "/status", native(server_status), methods=["GET"]),
        Route(servers + "/measurements", native(record_measurements), methods=["PUT"]),
    ]
