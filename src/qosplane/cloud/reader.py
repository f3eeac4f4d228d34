"""The edge to a real cloud: openstacksdk's connection (clouds.yaml, OS_CLOUD, OS_*) and
its service adapters, GET only: nothing here writes to the cloud. Each answer is kept as
the JSON the API reference documents and handed to cloud/intent.py.

A refused or missing read (401, 403, 404, or a service the catalog lacks) is not an error:
it is named in `unreadable` with the status and the cloud's message, and the explanation
goes on with what could be read. A cloud that cannot be reached at all is a CloudError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openstack
from keystoneauth1 import exceptions as ksa  # openstacksdk's transport

from qosplane.cloud.intent import (
    CloudRecords,
    PortRecord,
    VolumeRecord,
    attached_volume_ids,
    microversion,
)
from qosplane.model.errors import QosplaneError

# The highest compute microversion whose server body this reader knows (2.96: the
# embedded flavor since 2.47, pinned_availability_zone since 2.96).
COMPUTE_MICROVERSION = (2, 96)


class CloudError(QosplaneError):
    """The cloud could not be reached or logged into."""


class _Reads:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.unreadable: list[tuple[str, str]] = []

    def get(
        self, service: str, path: str, what: str, record: bool = True, **kwargs: Any
    ) -> Any | None:
        """The JSON body of `GET path` on `service`, or None with `what` named unreadable
        (unless `record` is False: the caller tries another way)."""
        try:
            response = getattr(self.conn, service).get(path, raise_exc=False, **kwargs)
        except (ksa.Unauthorized, ksa.ConnectFailure, ksa.DiscoveryFailure) as exc:
            raise CloudError(f"{service}: {exc}") from exc
        except ksa.EndpointNotFound as exc:  # the catalog has no such service
            if record:
                self.unreadable.append((what, f"no {service} endpoint: {exc}"))
            return None
        if response.status_code >= 400:
            if record:
                self.unreadable.append((what, f"HTTP {response.status_code}: {_message(response)}"))
            return None
        return response.json()


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:200]
    if isinstance(body, Mapping):
        for value in body.values():
            if isinstance(value, Mapping) and "message" in value:
                return str(value["message"])
        if "message" in body:
            return str(body["message"])
    return str(body)[:200]


def connect(cloud: str | None) -> Any:
    """openstacksdk's connection: `cloud` from clouds.yaml, or (None) OS_CLOUD / OS_*."""
    try:
        return openstack.connect(cloud=cloud) if cloud else openstack.connect()
    except Exception as exc:
        raise CloudError(f"cannot connect to cloud {cloud or '(OS_* variables)'}: {exc}") from exc


def _compute_microversion(conn: Any) -> tuple[int, int]:
    try:
        data = conn.compute.get_endpoint_data()
    except ksa.ClientException as exc:  # discovery, catalog, login
        raise CloudError(f"compute: {exc}") from exc
    highest = getattr(data, "max_microversion", None) if data is not None else None
    if not highest:
        return (2, 1)
    return min((int(highest[0]), int(highest[1])), COMPUTE_MICROVERSION)


def _server(reads: _Reads, ref: str, version: str) -> Mapping[str, Any] | None:
    found = reads.get("compute", f"/servers/{ref}", f"server {ref}", False, microversion=version)
    if found is not None:
        return dict(found["server"])
    # Not an id (or not this project's): by name, as the openstack CLI finds one.
    listed = reads.get("compute", "/servers/detail", "servers", params={"name": ref},
                       microversion=version)  # fmt: skip
    matches = [s for s in (listed or {}).get("servers", []) if s.get("name") == ref]
    if len(matches) != 1:
        raise CloudError(
            f"server {ref}: {'no such server' if not matches else f'{len(matches)} match'}"
        )
    return dict(matches[0])


def _flavor_now(reads: _Reads, server: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The flavor as it is now, with its extra specs: by id on an old cloud, else by the
    embedded flavor's name (Nova keeps no id in the embedded copy)."""
    embedded = server.get("flavor") or {}
    flavor_id = embedded.get("id")
    if flavor_id is None:
        listed = reads.get("compute", "/flavors/detail", "flavors", params={"is_public": "None"})
        named = [
            f for f in (listed or {}).get("flavors", []) if f["name"] == embedded["original_name"]
        ]
        if not named:
            if listed is not None:
                reads.unreadable.append(
                    (f"flavor {embedded['original_name']}", "no flavor of that name now")
                )
            return None
        flavor_id = named[0]["id"]
    flavor = reads.get("compute", f"/flavors/{flavor_id}", f"flavor {flavor_id}")
    if flavor is None:
        return None
    specs = reads.get(
        "compute", f"/flavors/{flavor_id}/os-extra_specs", f"extra specs of flavor {flavor_id}"
    )
    return dict(flavor["flavor"]) | {"extra_specs": (specs or {}).get("extra_specs", {})}


def _policy(reads: _Reads, policy_id: str | None, cache: dict[str, Any]) -> Any:
    if not policy_id:
        return None
    if policy_id not in cache:
        body = reads.get("network", f"/qos/policies/{policy_id}", f"QoS policy {policy_id}")
        cache[policy_id] = None if body is None else body["policy"]
    return cache[policy_id]


def _ports(reads: _Reads, server_id: str) -> tuple[PortRecord, ...]:
    listed = reads.get("network", "/ports", f"ports of server {server_id}",
                       params={"device_id": server_id})  # fmt: skip
    policies: dict[str, Any] = {}
    out = []
    for port in sorted((listed or {}).get("ports", []), key=lambda p: str(p["id"])):
        net = reads.get("network", f"/networks/{port['network_id']}",
                        f"network {port['network_id']}")  # fmt: skip
        network = None if net is None else net["network"]
        out.append(
            PortRecord(
                port,
                network,
                _policy(reads, port.get("qos_policy_id"), policies),
                _policy(reads, (network or {}).get("qos_policy_id"), policies),
            )
        )
    return tuple(out)


def _volumes(reads: _Reads, server: Mapping[str, Any]) -> tuple[VolumeRecord, ...]:
    types: dict[str, Any] | None = None
    out = []
    for volume_id in attached_volume_ids(server):
        body = reads.get("block_storage", f"/volumes/{volume_id}", f"volume {volume_id}")
        if body is None:
            continue
        volume = body["volume"]
        type_name = volume.get("volume_type")
        vtype = specs = None
        if type_name:
            if types is None:
                listed = reads.get("block_storage", "/types", "volume types")
                types = {t["name"]: t for t in (listed or {}).get("volume_types", [])}
            vtype = types.get(type_name)
            if vtype is None and types:
                reads.unreadable.append(
                    (f"volume type {type_name}", "not listed to these credentials")
                )
            specs_id = (vtype or {}).get("qos_specs_id")
            if vtype is not None and "qos_specs_id" not in vtype:
                reads.unreadable.append(
                    (f"QoS specs of volume type {type_name}",
                     "qos_specs_id is shown to admins only (cinder/api/views/types.py)")
                )  # fmt: skip
            elif specs_id:
                found = reads.get("block_storage", f"/qos-specs/{specs_id}",
                                  f"QoS specs {specs_id} of volume type {type_name}")  # fmt: skip
                specs = None if found is None else found["qos_specs"]
        out.append(VolumeRecord(volume, vtype, specs))
    return tuple(out)


def read_server(conn: Any, ref: str) -> CloudRecords:
    """Everything one server's QoS depends on, read-only."""
    reads = _Reads(conn)
    version = _compute_microversion(conn)
    text = f"{version[0]}.{version[1]}"
    server = _server(reads, ref, text)
    assert server is not None
    host = str(server.get("OS-EXT-SRV-ATTR:host") or "")
    agents = reads.get(
        "network", "/agents", "network agents", params={"host": host} if host else {}
    )
    hypervisor = None
    if host:
        found = reads.get("compute", "/os-hypervisors/detail", "hypervisors",
                          params={"hypervisor_hostname_pattern": host})  # fmt: skip
        matches = list((found or {}).get("hypervisors", []))
        hypervisor = matches[0] if matches else None
    return CloudRecords(
        server=server,
        compute_microversion=microversion(text),
        flavor_now=_flavor_now(reads, server),
        ports=_ports(reads, str(server["id"])),
        volumes=_volumes(reads, server),
        agents=None if agents is None else tuple(agents.get("agents", [])),
        hypervisor=hypervisor,
        unreadable=tuple(reads.unreadable),
    )
