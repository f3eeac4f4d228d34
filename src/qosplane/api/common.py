"""What every service handler shares: the request context, JSON bodies, error rendering."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qosplane.api.auth import Context, TokenSigner, utcnow
from qosplane.api.errors import error_response
from qosplane.api.policy import PolicyEngine
from qosplane.api.watch import HostWatch
from qosplane.model.errors import Forbidden, InvalidInput, PayloadTooLarge, QosplaneError
from qosplane.store.database import Database
from qosplane.store.identity import (
    DEFAULT_PASSWORD_HASH_ROUNDS,
    IdentityRepository,
    TokenClaims,
)


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
    password_hash_rounds: int = DEFAULT_PASSWORD_HASH_ROUNDS  # store/identity.py

    def identity(self, session: Session) -> IdentityRepository:
        """The identity store, setting new passwords with this API's hash rounds."""
        return IdentityRepository(session, self.password_hash_rounds)


Handler = Callable[[Request, "Services"], Awaitable[Response]]


def context(request: Request, services: Services) -> Context:
    """The caller, from a token that is signed, unexpired and still standing in the store
    (see `api/auth.py`), with the roles the caller holds now.

    A system-scoped or unscoped token works on Keystone's API only: Nova, Neutron and
    Cinder enforce project scope on every QoS call (scope_types ['project'] in their
    policies), and a system admin here would otherwise be an admin of every project."""
    ctx = standing(services, request.headers.get("x-auth-token"))
    if not ctx.project_id and not request.url.path.startswith("/identity/"):
        kind = "system-scoped" if ctx.system else "unscoped"
        raise Forbidden(
            f"A {kind} token cannot be used with this service; use a project-scoped one."
        )
    return ctx


def authorize(
    services: Services, ctx: Context, rule: str, target: dict[str, Any] | None = None
) -> None:
    """Every API decision by name through the policy engine (upstream's defaults, an
    operator's policy.yaml over them); the target is the caller's project unless given."""
    services.policy.enforce(rule, target or {"project_id": ctx.project_id}, ctx)


def standing(services: Services, token: str | None) -> Context:
    now = utcnow()
    ctx = services.signer.verify(token, now)
    with services.db.transaction() as s:
        roles = IdentityRepository(s).standing(
            TokenClaims(
                ctx.user_id, ctx.project_id, ctx.audit_id, ctx.issued_at.timestamp(), ctx.system
            ),
            now.timestamp(),
        )
    return ctx.with_roles(roles)


# oslo.middleware's sizelimit default (max_request_body_size), in the paste pipelines of
# Nova and Cinder; the agents' reports of a whole host may be larger.
MAX_BODY_BYTES = 114_688
AGENT_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 32


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) before it is read whole when it is larger than `max_bytes`."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"Request is too large: at most {max_bytes} bytes are taken.")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_text_and_depth(value: Any, path: str, depth: int = 0) -> None:
    """Every string valid Unicode (a lone surrogate cannot be stored or sent on) and the
    nesting no deeper than MAX_JSON_DEPTH, named by where it is."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(
            path or "body", "...", f"JSON nested at most {MAX_JSON_DEPTH} levels deep"
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                path or "body",
                value.encode("utf-8", "backslashreplace").decode(),
                "valid Unicode text",
                "a lone surrogate",
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text_and_depth(k, f"{path} key".strip(), depth + 1)
            child = f"{path}.{k}" if path else str(k)
            _check_text_and_depth(v, child, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text_and_depth(v, f"{path}[{i}]", depth + 1)


def _refuse_constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259), and no response could carry them back."""
    raise ValueError(f"{name} is not a JSON number")


async def json_body(
    request: Request, key: str | None = None, max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The request body as a mapping; with `key`, the object under that key."""
    raw = await _read_capped(request, max_bytes)
    try:
        body = json.loads(raw or b"{}", parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, >4300-digit integers
        raise InvalidInput(
            "body", raw[:80].decode(errors="replace"), "a JSON object", str(exc)
        ) from None
    except RecursionError:
        raise InvalidInput(
            "body",
            raw[:80].decode(errors="replace"),
            f"JSON nested at most {MAX_JSON_DEPTH} levels deep",
        ) from None
    if not isinstance(body, dict):
        raise InvalidInput("body", body, "a JSON object")
    _check_text_and_depth(body, "")
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
    service: str,
    services: Services,
    handler: Handler,
    finish: Callable[[Request, Response], None] | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """Bind a handler to the services and render qosplane errors in `service`'s shape;
    `finish` sees every response, errors included (a service's own headers)."""

    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request, services)
        except QosplaneError as exc:
            response = error_response(service, exc)
        if finish is not None:
            finish(request, response)
        return response

    return endpoint


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def empty(status: int) -> Response:
    return Response(status_code=status)


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"
