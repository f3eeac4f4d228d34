"""The OpenAPI 3 document of every route the API serves, built from the route table so it
cannot drift from it. Request bodies of the writes carry schemas of the upstream shapes
(what the real clients send); everything else is described by path and method only.

Served at /qosplane/v1/openapi.json; tests/test_api_fuzz.py drives schemathesis with it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Route

_PARAM = re.compile(r"{([a-z_]+)}")
_STR = {"type": "string", "maxLength": 300}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}


def _obj(
    key: str | None, properties: dict[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        inner["required"] = list(required)
    if key is None:
        return inner
    return {"type": "object", "properties": {key: inner}, "required": [key]}


_STRINGS = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 40}}
_RULE = _obj(
    None,
    {
        "max_kbps": _INT,
        "max_burst_kbps": _INT,
        "min_kbps": _INT,
        "max_kpps": _INT,
        "max_burst_kpps": _INT,
        "min_kpps": _INT,
        "dscp_mark": _INT,
        "direction": {"type": "string", "enum": ["ingress", "egress", "any", "up"]},
    },
)
_RULE_KEYS = (
    "bandwidth_limit_rule",
    "dscp_marking_rule",
    "minimum_bandwidth_rule",
    "packet_rate_limit_rule",
    "minimum_packet_rate_rule",
)
_ANY_RULE = {"type": "object", "properties": dict.fromkeys(_RULE_KEYS, _RULE)}

# (method, path) -> request body schema
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/identity/v3/auth/tokens"): _obj(
        "auth",
        {
            "identity": _obj(
                None,
                {
                    "methods": {"type": "array", "items": _STR},
                    "password": _obj(
                        None, {"user": _obj(None, {"name": _STR, "password": _STR, "id": _STR})}
                    ),
                },
            ),
            "scope": _obj(None, {"project": _obj(None, {"name": _STR, "id": _STR})}),
        },
    ),
    ("POST", "/identity/v3/projects"): _obj("project", {"name": _STR, "description": _STR}),
    ("POST", "/identity/v3/users"): _obj(
        "user", {"name": _STR, "password": _STR, "default_project_id": _STR}
    ),
    ("POST", "/compute/v2.1/flavors"): _obj(
        "flavor",
        {
            "name": _STR,
            "ram": _INT,
            "vcpus": _INT,
            "disk": _INT,
            "swap": _INT,
            "id": {"type": "string", "nullable": True},
            "OS-FLV-EXT-DATA:ephemeral": _INT,
            "os-flavor-access:is_public": _BOOL,
        },
        ("name", "ram", "vcpus"),
    ),
    ("POST", "/compute/v2.1/flavors/{flavor_id}/os-extra_specs"): {
        "type": "object",
        "properties": {
            "extra_specs": {
                "type": "object",
                "properties": {
                    k: {"type": "string", "maxLength": 12}
                    for k in (
                        "quota:cpu_shares",
                        "quota:cpu_quota",
                        "quota:cpu_period",
                        "quota:disk_read_bytes_sec",
                        "quota:disk_total_iops_sec",
                        "quota:vif_inbound_average",
                        "quota:vif_inbound_burst",
                        "quota:vif_outbound_peak",
                    )
                },
                "additionalProperties": {"type": "string", "maxLength": 12},
            }
        },
        "required": ["extra_specs"],
    },
    ("POST", "/compute/v2.1/flavors/{flavor_id}/action"): {
        "type": "object",
        "properties": {
            "addTenantAccess": _obj(None, {"tenant": _STR}),
            "removeTenantAccess": _obj(None, {"tenant": _STR}),
        },
    },
    ("POST", "/compute/v2.1/servers"): _obj(
        "server",
        {
            "name": _STR,
            "flavorRef": _STR,
            "imageRef": _STR,
            "key_name": _STR,
            "availability_zone": _STR,
            "networks": {"type": "array", "items": _obj(None, {"uuid": _STR, "port": _STR})},
            "security_groups": {"type": "array", "items": _obj(None, {"name": _STR})},
        },
        ("name", "flavorRef"),
    ),
    ("POST", "/compute/v2.1/servers/{server_id}/os-volume_attachments"): _obj(
        "volumeAttachment", {"volumeId": _STR}, ("volumeId",)
    ),
    ("POST", "/compute/v2.1/os-keypairs"): _obj("keypair", {"name": _STR, "public_key": _STR}),
    ("POST", "/compute/v2.1/os-aggregates"): _obj(
        "aggregate", {"name": _STR, "availability_zone": _STR}, ("name",)
    ),
    ("POST", "/compute/v2.1/os-aggregates/{ref}/action"): {
        "type": "object",
        "properties": {
            "add_host": _obj(None, {"host": _STR}),
            "remove_host": _obj(None, {"host": _STR}),
            "set_metadata": _obj(None, {"metadata": _STRINGS}),
        },
    },
    ("POST", "/image/v2/images"): _obj(
        None,
        {
            "name": _STR,
            "disk_format": _STR,
            "container_format": _STR,
            "visibility": {"type": "string", "enum": ["public", "private", "shared", "community"]},
        },
    ),
    ("POST", "/networking/v2.0/qos/policies"): _obj(
        "policy", {"name": _STR, "shared": _BOOL, "is_default": _BOOL, "description": _STR}
    ),
    ("PUT", "/networking/v2.0/qos/policies/{policy_id}"): _obj(
        "policy", {"name": _STR, "shared": _BOOL, "is_default": _BOOL}
    ),
    ("POST", "/networking/v2.0/qos/policies/{policy_id}/{collection}"): _ANY_RULE,
    ("PUT", "/networking/v2.0/qos/policies/{policy_id}/{collection}/{rule_id}"): _ANY_RULE,
    ("POST", "/networking/v2.0/networks"): _obj(
        "network",
        {
            "name": _STR,
            "shared": _BOOL,
            "qos_policy_id": {"type": "string", "nullable": True},
            "mtu": _INT,
            "provider:network_type": _STR,
            "provider:physical_network": _STR,
        },
    ),
    ("PUT", "/networking/v2.0/networks/{network_id}"): _obj(
        "network", {"name": _STR, "qos_policy_id": {"type": "string", "nullable": True}}
    ),
    ("POST", "/networking/v2.0/subnets"): _obj(
        "subnet",
        {
            "network_id": _STR,
            "cidr": _STR,
            "ip_version": _INT,
            "name": _STR,
            "allocation_pools": {
                "type": "array",
                "items": _obj(None, {"start": _STR, "end": _STR}),
            },
        },
    ),
    ("POST", "/networking/v2.0/ports"): _obj(
        "port",
        {
            "network_id": _STR,
            "name": _STR,
            "qos_policy_id": {"type": "string", "nullable": True},
            "security_groups": {"type": "array", "items": _STR},
        },
        ("network_id",),
    ),
    ("PUT", "/networking/v2.0/ports/{port_id}"): _obj(
        "port", {"qos_policy_id": {"type": "string", "nullable": True}, "name": _STR}
    ),
    ("POST", "/networking/v2.0/security-groups"): _obj(
        "security_group", {"name": _STR, "description": _STR}
    ),
    ("POST", "/volume/v3/{project_id}/qos-specs"): _obj(
        "qos_specs", {"name": _STR, "consumer": _STR}, ("name",)
    ),
    ("PUT", "/volume/v3/{project_id}/qos-specs/{spec_id}"): _obj("qos_specs", {}),
    ("PUT", "/volume/v3/{project_id}/qos-specs/{spec_id}/delete_keys"): _obj(
        None, {"keys": {"type": "array", "items": _STR}}
    ),
    ("POST", "/volume/v3/{project_id}/types"): _obj(
        "volume_type", {"name": _STR, "description": _STR, "os-volume-type-access:is_public": _BOOL}
    ),
    ("POST", "/volume/v3/{project_id}/volumes"): _obj(
        "volume", {"name": _STR, "size": _INT, "volume_type": _STR}
    ),
    ("POST", "/qosplane/v1/hosts"): _obj(
        "host",
        {
            "name": _STR,
            "facts": _obj(
                None,
                {
                    "cgroup": _STR,
                    "vif_type": _STR,
                    "tcp_reference_rtt_ms": _INT,
                    "physical_bridges": _STRINGS,
                },
            ),
        },
    ),
    ("POST", "/qosplane/v1/hosts/{name}/heartbeat"): _obj(None, {"applied_revision": _INT}),
    ("PUT", "/qosplane/v1/servers/{server_id}/measurements"): _obj(
        None, {"verdicts": {"type": "array", "items": {"type": "object"}}}
    ),
    ("PUT", "/qosplane/v1/hosts/{name}/report"): _obj(
        None,
        {
            "revision": _INT,
            "servers": {
                "type": "array",
                "items": _obj(None, {"id": _STR, "plan_revision": _INT, "status": _STR}),
            },
        },
    ),
}


def openapi_document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation: dict[str, Any] = {
                "operationId": f"{method.lower()} {route.path}",
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in _PARAM.findall(route.path)
                ],
                "responses": {
                    "default": {"description": "the service's own body; errors in its shape"}
                },
            }
            body = BODIES.get((method, route.path))
            if body is None and method in ("POST", "PUT"):
                body = {"type": "object"}
            if body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                }
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "qosplane", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}}
        },
        "security": [{"token": []}],
    }
