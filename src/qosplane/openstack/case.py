"""The case file of `qosplane plan` (design.md section 1): one instance's intent in
OpenStack's own vocabulary, plus the host facts, turned into model objects.

The caller loads the YAML; this module only sees plain mappings, so it stays pure.
Unknown keys are refused with the list of known ones: a typo must not silently drop a limit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from qosplane.model.errors import InvalidInput, parse_int
from qosplane.model.host_facts import (
    CgroupVersion,
    DscpFlowStyle,
    HostFacts,
    LibvirtBandwidthBackend,
    NeutronBackend,
    NovaSharesDefault,
)
from qosplane.model.instance import Instance, Port, VifType, Volume
from qosplane.model.network_qos import QosPolicy
from qosplane.openstack.cinder import parse_consumer, volume_qos
from qosplane.openstack.neutron import policy_from_json
from qosplane.openstack.nova import make_flavor

_TOP_KEYS = ("instance", "flavor", "ports", "volumes", "host")
_INSTANCE_KEYS = (
    "uuid",
    "name",
    "display_name",
    "image_id",
    "project_id",
    "project_name",
    "user_id",
    "user_name",
    "creation_time",
)
_FLAVOR_KEYS = (
    "name",
    "id",
    "vcpus",
    "ram_mb",
    "disk_gb",
    "ephemeral_gb",
    "swap_mb",
    "extra_specs",
)
_PORT_KEYS = (
    "id",
    "mac",
    "vif_type",
    "network_id",
    "network_name",
    "ip_addresses",
    "device_owner",
    "network_type",
    "physical_network",
    "mtu",
    "qos_policy",
    "network_qos_policy",
)
_VOLUME_KEYS = ("id", "name", "size_gb", "volume_type", "qos_specs")
_QOS_SPECS_KEYS = ("name", "consumer", "specs")
_HOST_KEYS = (
    "hostname",
    "vif_type",
    "ovs_bridge",
    "cgroup",
    "libvirt_bandwidth",
    "dscp_flows",
    "nova_shares_default",
    "neutron_meter_bandwidth",
    "neutron_backend",
    "virt_type",
    "emulator",
    "machine_type",
    "instances_path",
    "nova_version",
    "tcp_reference_rtt_ms",
    "physical_bridges",
)

E = TypeVar("E", bound=enum.Enum)


def _mapping(value: object, key: str, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(key, value, "a mapping with keys " + ", ".join(known))
    for name in value:
        if name not in known:
            raise InvalidInput(
                f"{key}.{name}", value[name], "keys " + ", ".join(known), "unknown key"
            )
    return value


def _list(value: object, key: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidInput(key, value, "a list")
    return value


def _text(value: object, key: str, required: bool = False) -> str:
    if value is None:
        if required:
            raise InvalidInput(key, None, "a non-empty string", "required")
        return ""
    if isinstance(value, (Mapping, list, bool)):
        raise InvalidInput(key, value, "a string")
    text = str(value)
    if required and not text:
        raise InvalidInput(key, value, "a non-empty string", "required")
    return text


def _enum(kind: type[E], value: object, key: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(key, value, "one of " + ", ".join(str(m.value) for m in kind)) from None


def _policy(value: Any, key: str) -> QosPolicy | None:
    if value is None:
        return None
    return policy_from_json(value, key)


def host_facts_from_case(body: object) -> HostFacts:
    if body is None:
        return HostFacts()
    host = _mapping(body, "host", _HOST_KEYS)
    defaults = HostFacts()
    bridges = host.get("physical_bridges") or {}
    if not isinstance(bridges, Mapping):
        raise InvalidInput("host.physical_bridges", bridges, "a mapping physnet -> bridge")
    return HostFacts(
        hostname=_text(host.get("hostname", defaults.hostname), "host.hostname"),
        vif_type=_enum(VifType, host.get("vif_type", defaults.vif_type.value), "host.vif_type"),
        ovs_bridge=_text(host.get("ovs_bridge", defaults.ovs_bridge), "host.ovs_bridge", True),
        cgroup=_enum(CgroupVersion, host.get("cgroup", defaults.cgroup.value), "host.cgroup"),
        libvirt_bandwidth=_enum(
            LibvirtBandwidthBackend,
            host.get("libvirt_bandwidth", defaults.libvirt_bandwidth.value),
            "host.libvirt_bandwidth",
        ),
        dscp_flows=_enum(
            DscpFlowStyle, host.get("dscp_flows", defaults.dscp_flows.value), "host.dscp_flows"
        ),
        nova_shares_default=_enum(
            NovaSharesDefault,
            host.get("nova_shares_default", defaults.nova_shares_default.value),
            "host.nova_shares_default",
        ),
        neutron_meter_bandwidth=_bool(
            host.get("neutron_meter_bandwidth", False), "host.neutron_meter_bandwidth"
        ),
        neutron_backend=_enum(
            NeutronBackend,
            host.get("neutron_backend", defaults.neutron_backend.value),
            "host.neutron_backend",
        ),
        virt_type=_enum_text(
            host.get("virt_type", defaults.virt_type), "host.virt_type", ("kvm", "qemu")
        ),
        emulator=_text(host.get("emulator", defaults.emulator), "host.emulator", True),
        machine_type=_text(
            host.get("machine_type", defaults.machine_type), "host.machine_type", True
        ),
        instances_path=_text(
            host.get("instances_path", defaults.instances_path), "host.instances_path", True
        ),
        nova_version=_text(host.get("nova_version", defaults.nova_version), "host.nova_version"),
        tcp_reference_rtt_ms=parse_int(
            "host.tcp_reference_rtt_ms",
            host.get("tcp_reference_rtt_ms", defaults.tcp_reference_rtt_ms),
            1,
            10_000,
        ),
        physical_bridges=tuple(
            (_text(k, "host.physical_bridges", True), _text(v, f"host.physical_bridges.{k}", True))
            for k, v in sorted(bridges.items())
        ),
    )


def host_facts_to_case(facts: HostFacts) -> dict[str, Any]:
    """The case file's `host` mapping for `facts`: what an agent registers with, and what
    `host_facts_from_case` reads back unchanged."""
    return {
        "hostname": facts.hostname,
        "vif_type": facts.vif_type.value,
        "ovs_bridge": facts.ovs_bridge,
        "cgroup": facts.cgroup.value,
        "libvirt_bandwidth": facts.libvirt_bandwidth.value,
        "dscp_flows": facts.dscp_flows.value,
        "nova_shares_default": facts.nova_shares_default.value,
        "neutron_meter_bandwidth": facts.neutron_meter_bandwidth,
        "neutron_backend": facts.neutron_backend.value,
        "virt_type": facts.virt_type,
        "emulator": facts.emulator,
        "machine_type": facts.machine_type,
        "instances_path": facts.instances_path,
        "nova_version": facts.nova_version,
        "tcp_reference_rtt_ms": facts.tcp_reference_rtt_ms,
        "physical_bridges": dict(facts.physical_bridges),
    }


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(key, value, "true or false")
    return value


def _enum_text(value: object, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(key, value, "one of " + ", ".join(allowed))
    return str(value)


def _port(body: object, index: int) -> Port:
    key = f"ports[{index}]"
    port = _mapping(body, key, _PORT_KEYS)
    vif_type = port.get("vif_type")
    ips = port.get("ip_addresses") or ()
    return Port(
        id=_text(port.get("id"), f"{key}.id", True),
        mac=_text(port.get("mac"), f"{key}.mac", True),
        vif_type=None if vif_type is None else _enum(VifType, vif_type, f"{key}.vif_type"),
        network_id=_text(port.get("network_id"), f"{key}.network_id"),
        network_name=_text(port.get("network_name"), f"{key}.network_name"),
        ip_addresses=tuple(
            _text(ip, f"{key}.ip_addresses", True) for ip in _list(ips, f"{key}.ip_addresses")
        ),
        device_owner=_text(port.get("device_owner", "compute:nova"), f"{key}.device_owner"),
        network_type=_text(port.get("network_type"), f"{key}.network_type"),
        physical_network=_text(port.get("physical_network"), f"{key}.physical_network"),
        mtu_bytes=parse_int(f"{key}.mtu", port.get("mtu", 1500), 68, 65535),
        qos_policy=_policy(port.get("qos_policy"), f"{key}.qos_policy"),
        network_qos_policy=_policy(port.get("network_qos_policy"), f"{key}.network_qos_policy"),
    )


def _volume(body: object, index: int) -> Volume:
    key = f"volumes[{index}]"
    vol = _mapping(body, key, _VOLUME_KEYS)
    size_gb = parse_int(f"{key}.size_gb", vol.get("size_gb"), 1, 2**31 - 1)
    raw_specs = vol.get("qos_specs")
    if raw_specs is None:
        qos = volume_qos(parse_consumer(None), {}, size_gb)
    else:
        specs_body = _mapping(raw_specs, f"{key}.qos_specs", _QOS_SPECS_KEYS)
        specs = specs_body.get("specs") or {}
        if not isinstance(specs, Mapping):
            raise InvalidInput(f"{key}.qos_specs.specs", specs, "a mapping of key: value")
        qos = volume_qos(
            parse_consumer(specs_body.get("consumer"), f"{key}.qos_specs.consumer"),
            specs,
            size_gb,
            name=_text(specs_body.get("name"), f"{key}.qos_specs.name"),
        )
    return Volume(
        id=_text(vol.get("id"), f"{key}.id", True),
        size_gb=size_gb,
        qos=qos,
        name=_text(vol.get("name"), f"{key}.name"),
        volume_type=_text(vol.get("volume_type"), f"{key}.volume_type"),
    )


def case_from_mapping(body: object) -> tuple[Instance, HostFacts]:
    """A parsed case file -> (instance, host facts). Raises InvalidInput naming the key."""
    case = _mapping(body, "case", _TOP_KEYS)
    inst = _mapping(case.get("instance"), "instance", _INSTANCE_KEYS)
    fl = _mapping(case.get("flavor"), "flavor", _FLAVOR_KEYS)
    extra = fl.get("extra_specs") or {}
    if not isinstance(extra, Mapping):
        raise InvalidInput("flavor.extra_specs", extra, "a mapping of key: value")
    flavor = make_flavor(
        name=_text(fl.get("name"), "flavor.name", True),
        vcpus=fl.get("vcpus", 1),
        ram_mb=fl.get("ram_mb", 512),
        disk_gb=fl.get("disk_gb", 1),
        extra_specs=extra,
        ephemeral_gb=fl.get("ephemeral_gb", 0),
        swap_mb=fl.get("swap_mb", 0),
        flavor_id=_text(fl.get("id"), "flavor.id"),
    )
    instance = Instance(
        uuid=_text(inst.get("uuid"), "instance.uuid", True),
        name=_text(inst.get("name"), "instance.name", True),
        flavor=flavor,
        display_name=_text(inst.get("display_name"), "instance.display_name"),
        ports=tuple(_port(p, i) for i, p in enumerate(_list(case.get("ports"), "ports"))),
        volumes=tuple(_volume(v, i) for i, v in enumerate(_list(case.get("volumes"), "volumes"))),
        image_id=_text(inst.get("image_id"), "instance.image_id"),
        project_id=_text(inst.get("project_id"), "instance.project_id"),
        project_name=_text(inst.get("project_name"), "instance.project_name"),
        user_id=_text(inst.get("user_id"), "instance.user_id"),
        user_name=_text(inst.get("user_name"), "instance.user_name"),
        creation_time=_text(inst.get("creation_time"), "instance.creation_time"),
    )
    return instance, host_facts_from_case(case.get("host"))
