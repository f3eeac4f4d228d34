"""The one table of qosplane's errors on the wire: HTTP status, Nova/Cinder body key and
Neutron error type, both ways.

The API renders a raised error through it (`api/errors.py`), and the client turns a status
back into the same class (`error_for_status`), so a 409 raised in a handler is a `Conflict`
in the agent or the CLI, not a generic failure. The body shapes are upstream's:
Nova's `{"itemNotFound": {"code": 404, "message": ...}}` (nova/api/openstack/wsgi.py
Fault), Neutron's `{"NeutronError": {"type", "message", "detail"}}`
(neutron_lib/api/faults.py) and Keystone's `{"error": {"code", "title", "message"}}`
(keystone/exception.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from qosplane.model.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QosplaneError,
    RevisionMismatch,
    ServiceFault,
    Unauthorized,
)


@dataclass(frozen=True, slots=True)
class WireError:
    status: int
    nova_key: str  # also Cinder's
    neutron_type: str


ERROR_TABLE: dict[type[QosplaneError], WireError] = {
    InvalidInput: WireError(400, "badRequest", "HTTPBadRequest"),
    Unauthorized: WireError(401, "unauthorized", "HTTPUnauthorized"),
    Forbidden: WireError(403, "forbidden", "HTTPForbidden"),
    NotFound: WireError(404, "itemNotFound", "NotFound"),
    # nova/api/openstack/wsgi.py Fault names 405 "badMethod".
    MethodNotAllowed: WireError(405, "badMethod", "HTTPMethodNotAllowed"),
    Conflict: WireError(409, "conflictingRequest", "Conflict"),
    RevisionMismatch: WireError(412, "preconditionFailed", "PreconditionFailed"),
    # nova/api/openstack/wsgi.py Fault names 413 "overLimit"; Neutron's webob fault.
    PayloadTooLarge: WireError(413, "overLimit", "HTTPRequestEntityTooLarge"),
}
SERVICE_FAULT = WireError(500, "computeFault", "HTTPInternalServerError")

_BY_STATUS = {wire.status: cls for cls, wire in ERROR_TABLE.items()}


def wire_error(exc: QosplaneError) -> WireError:
    """How `exc` goes on the wire: its class's row, or its nearest base class's."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return SERVICE_FAULT


def error_for_status(status: int, message: str) -> QosplaneError:
    """The inverse of `wire_error`: the class the API raised for `status`, with the
    service's message. 5xx and statuses no row names are a `ServiceFault`."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return ServiceFault(f"HTTP {status}: {message}")
    return cls.received(message)
