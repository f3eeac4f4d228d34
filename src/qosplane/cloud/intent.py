"""What a real cloud's APIs say about one server, as the model's intent: the JSON bodies of
Nova, Neutron and Cinder (as their API references document them) in, a case mapping (the
format `qosplane plan` reads, openstack/case.py) and the facts and findings of the reading
out. Pure: the reader (cloud/reader.py) fetches, this module only interprets, so the
compiler and explain never learn where an intent came from.

Sources, cited where each field is read:
- Nova: `GET /servers/{id}` (api-ref `servers-detail-resp`): the embedded flavor from
  microversion 2.47 (`original_name`, `extra_specs`...), else `flavor.id`;
  `os-extended-volumes:volumes_attached`; `OS-EXT-SRV-ATTR:host` and `:instance_name`
  (admin only by default, nova/policies/servers.py `servers:show:host_status`...).
- Neutron: `GET /v2.0/ports?device_id=` (`binding:vif_type`, `binding:vif_details`
  `ovs_hybrid_plug`, `datapath_type`), the network (`mtu`, `provider:*`,
  `qos_policy_id`), `GET /v2.0/qos/policies/{id}` with its `rules`; `GET /v2.0/agents`
  (admin only) for the backend.
- Cinder: `GET /volumes/{id}` (`size`, `volume_type`, `attachments`), the type's
  `qos_specs_id` (shown to admins only, cinder/api/views/types.py) and `GET
  /qos-specs/{id}` (admin only, cinder/policies/qos_specs.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qosplane.model.plan import Finding
from qosplane.openstack.neutron import RULE_FIELDS

# Nova 24.0.0 (Xena, compute API 2.90) plugs OVS ports as type='ethernet' taps through
# os-vif (nova/virt/libvirt/vif.py); earlier releases wrote type='bridge' + virtualport.
ETHERNET_FROM_MICROVERSION = (2, 90)
EMBEDDED_FLAVOR_MICROVERSION = (2, 47)
# neutron-lib constants.AGENT_TYPE_*: the ML2 mechanism each agent type stands for.
AGENT_BACKENDS = {
    "Open vSwitch agent": "openvswitch",
    "OVN Controller agent": "ovn",
    "OVN Controller Gateway agent": "ovn",
}
AGENT_NOT_MODELLED = {"Linux bridge agent": "linuxbridge"}
FLAVOR_CHANGED = "flavor_changed_since_boot"


@dataclass(frozen=True, slots=True)
class PortRecord:
    port: Mapping[str, Any]
    network: Mapping[str, Any] | None  # None: not readable
    policy: Mapping[str, Any] | None  # the port's own, with its rules
    network_policy: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    volume: Mapping[str, Any]
    volume_type: Mapping[str, Any] | None
    qos_specs: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class CloudRecords:
    """Everything the reader fetched for one server; `unreadable`: (what, why) for each
    read the credentials were refused or the cloud did not answer."""

    server: Mapping[str, Any]
    compute_microversion: tuple[int, int]  # the highest both sides speak
    flavor_now: Mapping[str, Any] | None = None  # the flavor as it is now, with extra_specs
    ports: tuple[PortRecord, ...] = ()
    volumes: tuple[VolumeRecord, ...] = ()
    agents: tuple[Mapping[str, Any], ...] | None = None
    hypervisor: Mapping[str, Any] | None = None
    unreadable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Fact:
    name: str
    value: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "source": self.source}


@dataclass(slots=True)
class CloudCase:
    """The case to compile, what the reading inferred (each fact with its source), what it
    found worth saying, and what it could not read."""

    case: dict[str, Any]
    facts: list[Fact] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "facts": [f.to_json() for f in self.facts],
            "findings": [f.to_json() for f in self.findings],
            "unreadable": [{"what": w, "why": y} for w, y in self.unreadable],
        }


def microversion(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _flavor(server: Mapping[str, Any], now: Mapping[str, Any] | None) -> dict[str, Any]:
    embedded = server.get("flavor") or {}
    source = embedded if "original_name" in embedded else now or {}
    return {
        "name": str(source.get("original_name") or source.get("name") or embedded.get("id")),
        "vcpus": int(source.get("vcpus") or 1),
        "ram_mb": int(source.get("ram") or 512),
        "disk_gb": int(source.get("disk") or 0) or 1,
        "ephemeral_gb": int(
            source.get("ephemeral") or source.get("OS-FLV-EXT-DATA:ephemeral") or 0
        ),
        "swap_mb": int(source.get("swap") or 0),
        "extra_specs": {str(k): str(v) for k, v in (source.get("extra_specs") or {}).items()},
    }


def _policy(body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Neutron policy with its rules, each rule cut to its type's fields (a real cloud's
    rule carries more: tenant_id, qos_policy_id...)."""
    if body is None:
        return None
    rules = []
    for rule in body.get("rules") or ():
        kind = str(rule.get("type", ""))
        keep = set(RULE_FIELDS.get(kind, ())) | {"type", "id"}
        rules.append({k: v for k, v in rule.items() if k in keep})
    return {"id": body.get("id", ""), "name": body.get("name", ""), "rules": rules}


def _vif_type(port: Mapping[str, Any], version: tuple[int, int]) -> tuple[str | None, str]:
    """The case's vif_type for a bound port, and why (its binding)."""
    vif = port.get("binding:vif_type")
    details = port.get("binding:vif_details") or {}
    vnic = port.get("binding:vnic_type", "normal")
    if vif == "ovs":
        if details.get("ovs_hybrid_plug"):
            return "hybrid", "binding:vif_type ovs, vif_details ovs_hybrid_plug true"
        if details.get("datapath_type") == "netdev":
            return "vhostuser", "binding:vif_type ovs, datapath_type netdev (OVS-DPDK)"
        if version >= ETHERNET_FROM_MICROVERSION:
            return (
                "ethernet",
                "binding:vif_type ovs, os-vif plugs a type='ethernet' tap (Nova >= 24)",
            )
        return "bridge", "binding:vif_type ovs, type='bridge' with an OVS virtualport (Nova < 24)"
    if vif == "vhostuser":
        return "vhostuser", "binding:vif_type vhostuser"
    if vif in ("hw_veb", "hostdev_physical") or vnic in ("direct", "macvtap"):
        return ("direct" if vnic == "macvtap" else "hostdev"), f"binding:vnic_type {vnic}"
    if vif == "bridge":
        return "hybrid", "binding:vif_type bridge (Linux bridge agent): a tap in a Linux bridge"
    return None, f"binding:vif_type {vif or 'unbound'}: the host's default wiring assumed"


def _volume(record: VolumeRecord) -> dict[str, Any]:
    volume = record.volume
    out: dict[str, Any] = {
        "id": str(volume["id"]),
        "name": str(volume.get("name") or ""),
        "size_gb": int(volume.get("size") or 1),
        "volume_type": str(volume.get("volume_type") or ""),
    }
    if record.qos_specs is not None:
        out["qos_specs"] = {
            "name": str(record.qos_specs.get("name") or ""),
            "consumer": str(record.qos_specs.get("consumer") or "back-end"),
            "specs": {str(k): str(v) for k, v in (record.qos_specs.get("specs") or {}).items()},
        }
    return out


def _flavor_changed(server: Mapping[str, Any], now: Mapping[str, Any] | None) -> list[Finding]:
    """Nova never re-applies a changed flavor to a running instance: the embedded flavor
    is what the guest got, the flavor as it is now is what its next boot would not get
    either (a resize would)."""
    embedded = server.get("flavor") or {}
    if "original_name" not in embedded or now is None:
        return []
    was = embedded.get("extra_specs") or {}
    is_now = now.get("extra_specs") or {}
    changed = sorted(
        k for k in set(was) | set(is_now) if str(was.get(k, "")) != str(is_now.get(k, ""))
    )
    out = [
        Finding(
            FLAVOR_CHANGED,
            f"flavor {embedded['original_name']} changed since boot: {k} was "
            f"{was.get(k, 'unset')!r}, is now {is_now.get(k, 'unset')!r}; Nova never re-applies it",
            key=k,
        )
        for k in changed
    ]
    for key, now_key in (("vcpus", "vcpus"), ("ram", "ram"), ("disk", "disk")):
        if key in embedded and now_key in now and embedded[key] != now[now_key]:
            out.append(
                Finding(
                    FLAVOR_CHANGED,
                    f"flavor {embedded['original_name']} changed since boot: {key} was "
                    f"{embedded[key]}, is now {now[now_key]}",
                    key=key,
                )
            )
    return out


def _backend(records: CloudRecords, host: str) -> tuple[str | None, str]:
    if records.agents is None:
        return None, ""
    types = {str(a.get("agent_type")) for a in records.agents if not host or a.get("host") == host}
    for agent_type, backend in AGENT_BACKENDS.items():
        if agent_type in types:
            return backend, f"network agent {agent_type!r} on {host or 'the cloud'}"
    for agent_type, backend in AGENT_NOT_MODELLED.items():
        if agent_type in types:
            return None, f"network agent {agent_type!r}: {backend} is not modelled"
    return None, f"no Open vSwitch or OVN agent on {host or 'the cloud'}"


def case_of(records: CloudRecords) -> CloudCase:
    server = records.server
    version = records.compute_microversion
    out = CloudCase(case={}, unreadable=list(records.unreadable))
    facts, findings = out.facts, out.findings
    facts.append(
        Fact("compute API", f"{version[0]}.{version[1]}", "the highest microversion both speak")
    )
    if version < EMBEDDED_FLAVOR_MICROVERSION:
        findings.append(
            Finding(
                "flavor_not_embedded",
                f"compute API {version[0]}.{version[1]} embeds no flavor (2.47 does): the "
                "flavor was read by id, as it is now, which may not be what the guest booted "
                "with",
            )
        )
    host = str(server.get("OS-EXT-SRV-ATTR:host") or "")
    name = str(server.get("OS-EXT-SRV-ATTR:instance_name") or "")
    if not name:
        name = f"instance-{str(server['id'])[:8]}"
        out.unreadable.append(
            ("OS-EXT-SRV-ATTR:instance_name", f"not shown to these credentials: {name} used")
        )
    if host:
        facts.append(Fact("compute host", host, "OS-EXT-SRV-ATTR:host of the server"))
    findings += _flavor_changed(server, records.flavor_now)
    ports = []
    for _index, record in enumerate(records.ports):
        port, network = record.port, record.network or {}
        vif, why = _vif_type(port, version)
        facts.append(Fact(f"wiring of port {port['id']}", vif or "host default", why))
        entry: dict[str, Any] = {
            "id": str(port["id"]),
            "mac": str(port.get("mac_address") or ""),
            "network_id": str(port.get("network_id") or ""),
            "network_name": str(network.get("name") or ""),
            "ip_addresses": [str(ip["ip_address"]) for ip in port.get("fixed_ips") or ()],
            "device_owner": str(port.get("device_owner") or "compute:nova"),
            "mtu": int(network.get("mtu") or 1500),
        }
        if vif is not None:
            entry["vif_type"] = vif
        for key, wire in (("network_type", "provider:network_type"),
                          ("physical_network", "provider:physical_network")):  # fmt: skip
            if network.get(wire):
                entry[key] = str(network[wire])
        if record.policy is not None:
            entry["qos_policy"] = _policy(record.policy)
        if record.network_policy is not None:
            entry["network_qos_policy"] = _policy(record.network_policy)
        ports.append(entry)
    backend, why = _backend(records, host)
    host_facts: dict[str, Any] = {"nova_version": f"compute API {version[0]}.{version[1]}"}
    if host:
        host_facts["hostname"] = host
    if backend is not None:
        host_facts["neutron_backend"] = backend
        facts.append(Fact("Neutron backend", backend, why))
    else:
        facts.append(
            Fact("Neutron backend", "openvswitch (assumed)", why or "the agents are not readable")
        )
    if records.hypervisor is not None:
        kind = str(records.hypervisor.get("hypervisor_type") or "")
        facts.append(
            Fact("hypervisor", f"{kind} {records.hypervisor.get('hypervisor_version', '')}".strip(),
                 "os-hypervisors of the server's host")
        )  # fmt: skip
        if kind and kind != "QEMU":
            findings.append(
                Finding(
                    "hypervisor_not_modelled",
                    f"hypervisor {kind}: qosplane models libvirt with QEMU/KVM only",
                )
            )
    facts.append(Fact("cgroup version", "v1 (assumed)", "not visible through the APIs"))
    out.case = {
        "instance": {
            "uuid": str(server["id"]),
            "name": name,
            "display_name": str(server.get("name") or ""),
            "image_id": str((server.get("image") or {}).get("id") or ""),
            "project_id": str(server.get("tenant_id") or server.get("project_id") or ""),
            "user_id": str(server.get("user_id") or ""),
            "creation_time": str(server.get("created") or ""),
        },
        "flavor": _flavor(server, records.flavor_now),
        "ports": ports,
        "volumes": [_volume(v) for v in records.volumes],
        "host": host_facts,
    }
    return out


def attached_volume_ids(server: Mapping[str, Any]) -> list[str]:
    return [str(v["id"]) for v in server.get("os-extended-volumes:volumes_attached") or ()]


__all__: Sequence[str] = (
    "CloudCase",
    "CloudRecords",
    "Fact",
    "PortRecord",
    "VolumeRecord",
    "attached_volume_ids",
    "case_of",
    "microversion",
)
