"""What every service handler shares: the request context, JSON bodies, error rendering."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qosplane.api.auth import Context, TokenSigner, utcnow
from qosplane.api.errors import error_response
from qosplane.api.policy import PolicyEngine
from qosplane.api.watch import HostWatch
from qosplane.model.errors import InvalidInput, QosplaneError
from qosplane.store.database import Database


@dataclass(frozen=True, slots=True)
class AdminAccount:
    """The bootstrap admin (user and project 'admin', role admin)."""

    user_id: str
    password: str
    project_id: str


@dataclass(frozen=True, slots=True)
class Services:
    db: Database
    signer: TokenSigner
    admin: AdminAccount
    # The all-in-one's own host: registered at start-up so servers can be placed before
    # any remote agent registers.
    local_host: str = "localhost"
    watch: HostWatch = field(default_factory=HostWatch)
    policy: PolicyEngine = field(default_factory=PolicyEngine)


Handler = Callable[[Request, "Services"], Awaitable[Response]]


def context(request: Request, services: Services) -> Context:
    return services.signer.verify(request.headers.get("x-auth-token"), utcnow())


async def json_body(request: Request, key: str | None = None) -> dict[str, Any]:
    """The request body as a mapping; with `key`, the object under that key."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "body", raw[:80].decode(errors="replace"), "a JSON object", str(exc)
        ) from None
    if not isinstance(body, dict):
        raise InvalidInput("body", body, "a JSON object")
    if key is None:
        return body
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise InvalidInput(key, inner, f'a JSON object under "{key}"', "missing or not an object")
    return inner


def name_field(value: object, key: str) -> str:
    """A host or aggregate name: 1 to 255 characters once stripped, as Nova's schema says."""
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 255:
        raise InvalidInput(key, value, "a string of 1 to 255 characters")
    return value.strip()


def wrap(
    service: str, services: Services, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Bind a handler to the services and render qosplane errors in `service`'s shape."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, services)
        except QosplaneError as exc:
            return error_response(service, exc)

    return endpoint


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def empty(status: int) -> Response:
    return Response(status_code=status)


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"
