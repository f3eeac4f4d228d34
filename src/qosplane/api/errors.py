"""Each service's error body for a raised qosplane error.

Every handler raises model errors; nothing below returns an error response by hand. The
status and names come from the one table in `openstack/errors.py`, so a new error class
needs one row there and every service renders it in its own shape.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from qosplane.model.errors import Conflict, NotFound, QosplaneError
from qosplane.openstack.errors import wire_error

_NEUTRON_TYPES = {
    "QoS policy": "QosPolicyNotFound",
    "QoS rule": "QosRuleNotFound",
}


def error_body(service: str, exc: QosplaneError) -> tuple[int, dict[str, Any]]:
    wire = wire_error(exc)
    status, nova_key, neutron_type = wire.status, wire.nova_key, wire.neutron_type
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
        title = {
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            409: "Conflict",
        }.get(status, "Bad Request")
        return status, {"error": {"code": status, "title": title, "message": message}}
    return status, {nova_key: {"code": status, "message": message}}


def error_response(service: str, exc: QosplaneError) -> JSONResponse:
    status, body = error_body(service, exc)
    return JSONResponse(body, status_code=status)
