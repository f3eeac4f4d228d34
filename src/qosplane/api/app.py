"""The ASGI application: every service under one port with DevStack's path layout."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qosplane.api import cinder, glance, keystone, native
from qosplane.api.common import Services
from qosplane.api.errors import error_body
from qosplane.api.neutron import core as neutron_core
from qosplane.api.neutron import qos as neutron_qos
from qosplane.api.neutron import rbac as neutron_rbac
from qosplane.api.nova import flavors as nova_flavors
from qosplane.api.nova import hosts as nova_hosts
from qosplane.api.nova import servers as nova_servers
from qosplane.api.openapi import openapi_document
from qosplane.model.errors import MethodNotAllowed, NotFound, QosplaneError
from qosplane.store.database import listen_host_changes
from qosplane.store.hosts import HostRepository

LOG = logging.getLogger("qosplane.api")


def _service_of(path: str) -> str:
    for prefix, service in (
        ("/networking", "network"),
        ("/identity", "identity"),
        ("/image", "image"),
    ):
        if path.startswith(prefix):
            return service
    return "compute"


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the service's own error shape, never a bare 500."""
    assert isinstance(exc, HTTPException)
    service = _service_of(request.url.path)
    if exc.status_code == 404:
        _, body = error_body(service, NotFound("resource", request.url.path))
    else:
        _, body = error_body(
            service,
            MethodNotAllowed(f"The method {request.method} is not supported for this resource."),
        )
    return JSONResponse(body, status_code=exc.status_code)


class AnswerBugsInPlace:
    """A bug, not bad input: logged with its traceback and answered as a 500 in the service's
    shape, so the client shows a message instead of a parse error.

    This is middleware rather than Starlette's `Exception` handler because that handler
    re-raises after answering, and uvicorn then closes the connection: the client's next
    request on its keep-alive connection would fail too. Here the exception ends with the
    answer, and the connection stays usable. Only an error after the answer started (half a
    response already sent) is raised on, since then the connection cannot be saved."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            request = Request(scope)
            LOG.exception("unhandled error on %s %s", request.method, request.url.path)
            if started:
                raise
            _, body = error_body(
                _service_of(request.url.path),
                QosplaneError(f"internal error ({type(exc).__name__}); see the server log"),
            )
            await JSONResponse(body, status_code=500)(scope, receive, send)


def build_app(services: Services) -> Starlette:
    with services.db.transaction() as s:
        services.identity(s).bootstrap_admin(
            services.admin.user_id, services.admin.project_id, services.admin.password
        )
        HostRepository(s).ensure(services.local_host)
    services.db.on_hosts_changed(services.watch.changed)
    routes = (
        keystone.routes(services)
        + nova_flavors.routes(services)
        + nova_servers.routes(services)
        + nova_hosts.routes(services)
        + native.routes(services)
        + glance.routes(services)
        + neutron_qos.routes(services)
        + neutron_core.routes(services)
        + neutron_rbac.routes(services)
        + cinder.routes(services)
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = listen_host_changes(services.db.engine, services.watch.changed, stop)
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=5)

    document = openapi_document(routes)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/qosplane/v1/openapi.json", openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(AnswerBugsInPlace)],
        lifespan=lifespan,
    )
    app.state.services = services
    return app
