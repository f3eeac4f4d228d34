"""The edge to a real cloud: openstacksdk's connection (clouds.yaml, OS_CLOUD, OS_*) and
its service adapters, GET only: nothing here writes to the cloud. Each answer is kept as
the JSON the API reference documents and handed to cloud/intent.py.

A refused or missing read (401, 403, 404, or a service the catalog lacks) is not an error:
it is named in `unreadable` with the status and the cloud's message, and the explanation
goes on with what could be read. A cloud that cannot be reached at all is a CloudError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openstack
from keystoneauth1 import exceptions as ksa  # openstacksdk's transport

from qosplane.cloud.intent import (
    CloudRecords,
    PortRecord,
    VolumeRecord,
    attached_volume_ids,
)
from qosplane.model.errors import QosplaneError

# The highest compute microversion whose server body this reader knows (2.96: the
# embedded flavor since 2.47, pinned_availability_zone since 2.96).
COMPUTE_MICROVERSION = (2, 96)


class CloudError(QosplaneError):
    """The cloud could not be reached or logged into."""


class Cache:
    """Answers one audit shares between its servers (flavors, networks, policies, volume
    types, QoS specs, agents, hypervisors): each is read once, a refusal included. Threads
    may fill it at once: a race only reads an answer twice."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str, str], tuple[Any | None, str | None]] = {}


class _Reads:
    def __init__(self, conn: Any, cache: Cache | None = None) -> None:
        self.conn = conn
        self.cache = cache or Cache()
        self.unreadable: list[tuple[str, str]] = []

    def get(
        self,
        service: str,
        path: str,
        what: str,
        record: bool = True,
        shared: bool = False,
        **kwargs: Any,
    ) -> Any | None:
        """The JSON body of `GET path` on `service`, or None with `what` named unreadable
        (unless `record` is False: the caller tries another way); `shared`: the same for
        every server, so kept in the cache."""
        key = (service, path, json.dumps(kwargs, sort_keys=True, default=str))
        if shared and key in self.cache.answers:
            body, why = self.cache.answers[key]
        else:
            body, why = self._fetch(service, path, **kwargs)
            if shared:
                self.cache.answers[key] = (body, why)
        if why is not None and record:
            self.unreadable.append((what, why))
        return body

    def _fetch(self, service: str, path: str, **kwargs: Any) -> tuple[Any | None, str | None]:
        try:
            response = getattr(self.conn, service).get(path, raise_exc=False, **kwargs)
        except (ksa.Unauthorized, ksa.ConnectFailure, ksa.DiscoveryFailure) as exc:
            raise CloudError(f"{service}: {exc}") from exc
        except ksa.EndpointNotFound as exc:  # the catalog has no such service
            return None, f"no {service} endpoint: {exc}"
        if response.status_code >= 400:
            return None, f"HTTP {response.status_code}: {_message(response)}"
        return response.json(), None


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
        listed = reads.get(
            "compute", "/flavors/detail", "flavors", shared=True, params={"is_public": "None"}
        )
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
    flavor = reads.get("compute", f"/flavors/{flavor_id}", f"flavor {flavor_id}", shared=True)
    if flavor is None:
        return None
    specs = reads.get(
        "compute",
        f"/flavors/{flavor_id}/os-extra_specs",
        f"extra specs of flavor {flavor_id}",
        shared=True,
    )
    return dict(flavor["flavor"]) | {"extra_specs": (specs or {}).get("extra_specs", {})}


def _policy(reads: _Reads, policy_id: str | None) -> Any:
    if not policy_id:
        return None
    body = reads.get(
        "network", f"/qos/policies/{policy_id}", f"QoS policy {policy_id}", shared=True
    )
    return None if body is None else body["policy"]


def _ports(reads: _Reads, server_id: str) -> tuple[PortRecord, ...]:
    listed = reads.get("network", "/ports", f"ports of server {server_id}",
                       params={"device_id": server_id})  # fmt: skip
    out = []
    for port in sorted((listed or {}).get("ports", []), key=lambda p: str(p["id"])):
        net = reads.get("network", f"/networks/{port['network_id']}",
                        f"network {port['network_id']}", shared=True)  # fmt: skip
        network = None if net is None else net["network"]
        out.append(
            PortRecord(
                port,
                network,
                _policy(reads, port.get("qos_policy_id")),
                _policy(reads, (network or {}).get("qos_policy_id")),
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
                listed = reads.get("block_storage", "/types", "volume types", shared=True)
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
                                  f"QoS specs {specs_id} of volume type {type_name}",
                                  shared=True)  # fmt: skip
                specs = None if found is None else found["qos_specs"]
        out.append(VolumeRecord(volume, vtype, specs))
    return tuple(out)


def _records(reads: _Reads, server: Mapping[str, Any], version: tuple[int, int]) -> CloudRecords:
    host = str(server.get("OS-EXT-SRV-ATTR:host") or "")
    agents = reads.get("network", "/agents", "network agents", shared=True,
                       params={"host": host} if host else {})  # fmt: skip
    hypervisor = None
    if host:
        # 2.53: the pattern filter (ignored before) and each hypervisor's service.host; the
        # pattern is a substring, so the one whose service runs on `host` is picked.
        found = reads.get("compute", "/os-hypervisors/detail", "hypervisors", shared=True,
                          microversion="2.53",
                          params={"hypervisor_hostname_pattern": host})  # fmt: skip
        matches = [
            h
            for h in (found or {}).get("hypervisors", [])
            if (h.get("service") or {}).get("host") == host or h.get("hypervisor_hostname") == host
        ]
        hypervisor = matches[0] if matches else None
    return CloudRecords(
        server=server,
        compute_microversion=version,
        flavor_now=_flavor_now(reads, server),
        ports=_ports(reads, str(server["id"])),
        volumes=_volumes(reads, server),
        agents=None if agents is None else tuple(agents.get("agents", [])),
        hypervisor=hypervisor,
        unreadable=tuple(reads.unreadable),
    )


def read_server(conn: Any, ref: str) -> CloudRecords:
    """Everything one server's QoS depends on, read-only."""
    reads = _Reads(conn)
    version = _compute_microversion(conn)
    server = _server(reads, ref, f"{version[0]}.{version[1]}")
    assert server is not None
    return _records(reads, server, version)


PAGE = 100  # servers per listing request (Nova's limit/marker paging)
WORKERS = 4  # servers read at once: bounded, so a large cloud is not flooded


def list_servers(conn: Any, all_projects: bool) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """Every server the credentials see (`all_projects`: Nova's all_tenants, admin only),
    a page at a time; and the compute microversion they were read at."""
    version = _compute_microversion(conn)
    reads = _Reads(conn)
    servers: list[dict[str, Any]] = []
    marker = None
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if all_projects:
            params["all_tenants"] = 1
        if marker:
            params["marker"] = marker
        page = reads.get("compute", "/servers/detail", "servers",
                         microversion=f"{version[0]}.{version[1]}", params=params)  # fmt: skip
        if page is None:
            raise CloudError(f"list servers: {reads.unreadable[-1][1]}")
        batch = list(page.get("servers", []))
        servers += batch
        if len(batch) < PAGE or not page.get("servers_links"):
            return servers, version
        marker = batch[-1]["id"]


def read_servers(
    conn: Any,
    servers: list[dict[str, Any]],
    version: tuple[int, int],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[CloudRecords]:
    """Each listed server's records, `WORKERS` at a time, sharing one cache; `progress`
    hears (done, total) after each."""
    cache = Cache()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(_records, _Reads(conn, cache), s, version) for s in servers]
        for done, future in enumerate(futures, start=1):
            yield future.result()
            if progress is not None:
                progress(done, len(futures))
