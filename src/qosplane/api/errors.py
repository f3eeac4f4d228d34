"""The one table that maps qosplane errors to HTTP, and each service's error body.

Every handler raises model errors; nothing below returns an error response by hand, so a
new error class needs one row here and every service renders it in its own shape.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from qosplane.model.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    QosplaneError,
    RevisionMismatch,
    Unauthorized,
)

# error class -> (HTTP status, Nova/Cinder key, Neutron type)
ERROR_TABLE: dict[type[QosplaneError], tuple[int, str, str]] = {
    InvalidInput: (400, "badRequest", "HTTPBadRequest"),
    Unauthorized: (401, "unauthorized", "HTTPUnauthorized"),
    Forbidden: (403, "forbidden", "HTTPForbidden"),
    NotFound: (404, "itemNotFound", "NotFound"),
    Conflict: (409, "conflictingRequest", "Conflict"),
    RevisionMismatch: (412, "preconditionFailed", "PreconditionFailed"),
}

_NEUTRON_TYPES = {
    "QoS policy": "QosPolicyNotFound",
    "QoS rule": "QosRuleNotFound",
}


def classify(exc: QosplaneError) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 500, "computeFault", "HTTPInternalServerError"


def error_body(service: str, exc: QosplaneError) -> tuple[int, dict[str, Any]]:
    status, nova_key, neutron_type = classify(exc)
    message = str(exc)
    if service == "network":
        if isinstance(exc, NotFound):
            neutron_type = _NEUTRON_TYPES.get(exc.kind, neutron_type)
        elif isinstance(exc, Conflict) and "already exists" in message:
            neutron_type = "QoSRulesConflict"
        elif isinstance(exc, Conflict) and "min_kbps" in message:
            neutron_type = "QoSRuleParameterConflict"
        return status, {"NeutronError": {"type": neutron_type, "message": message, "detail": ""}}
    if service == "identity":
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(status, "Bad Request")
        return status, {"error": {"code": status, "title": title, "message": message}}
    return status, {nova_key: {"code": status, "message": message}}


def error_response(service: str, exc: QosplaneError) -> JSONResponse:
    status, body = error_body(service, exc)
    return JSONResponse(body, status_code=status)
