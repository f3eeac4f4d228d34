"""Where each port and disk of an instance lands on the host: device names, libvirt
interface types, which side of a device carries which direction, who owns what.

Every target compiler and `effective` read this one resolution, so they cannot disagree
about which device a limit is on.
"""

from __future__ import annotations

from dataclasses import dataclass

from qosplane.model.disk import IoTune
from qosplane.model.host_facts import HostFacts, LibvirtBandwidthBackend
from qosplane.model.instance import Instance, Port, VifType
from qosplane.model.network_qos import QosPolicy


@dataclass(frozen=True, slots=True)
class PortWiring:
    port: Port
    index: int
    vif_type: VifType
    libvirt_type: str  # the <interface type=...> Nova writes
    guest_device: str  # host-side device that carries the guest's traffic ('' for hostdev)
    # Nova writes <bandwidth> for this VIF type (not vhost-user nor hostdev).
    nova_writes_bandwidth: bool
    # libvirt virNetDevBandwidthSet(swapped=...): True for bridge/network taps, where
    # <inbound> becomes root HTB (to the guest) and <outbound> ingress police (from it).
    swapped: bool
    libvirt_backend: LibvirtBandwidthBackend | None  # None: libvirt applies nothing here
    ovs_port: str  # the br-int port Neutron's OVS agent configures ('' for SR-IOV)
    tap_in_ovs: bool  # OVS manages the guest device itself, so it owns its ingress qdisc
    source_bridge: str
    virtualport_ovs: bool
    policy: QosPolicy | None
    policy_source: str  # 'port', 'network' or ''


@dataclass(frozen=True, slots=True)
class DiskWiring:
    target: str  # vda, vdb, ...
    index: int
    alias: str  # virtio-disk0
    drive_id: str  # drive-virtio-disk0
    source_path: str
    source_format: str
    kind: str  # 'image' (flavor limits) or 'volume' (Cinder front-end limits)
    iotune: IoTune
    volume_id: str = ""
    declared_by: str = ""


def disk_target(index: int) -> str:
    """virtio target names as libvirt assigns them: vda..vdz, vdaa, vdab, ..."""
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return "vd" + letters


def wire_port(port: Port, index: int, facts: HostFacts) -> PortWiring:
    """How Nova and os-vif wire the port for its VIF type (the port's, or the host's)."""
    vif = port.vif_type or facts.vif_type
    policy, source = port.effective_policy()
    return PortWiring(port, index, vif, *_vif_shape(vif, port, index, facts), policy, source)


_Shape = tuple[str, str, bool, bool, LibvirtBandwidthBackend | None, str, bool, str, bool]


def _vif_shape(vif: VifType, port: Port, index: int, facts: HostFacts) -> _Shape:
    """(libvirt type, guest device, Nova writes <bandwidth>, swapped, libvirt's bandwidth
    backend, OVS port, tap is an OVS port, source bridge, OVS virtualport) for `vif`."""
    tap = port.tap_name
    tc = LibvirtBandwidthBackend.TC
    match vif:
        case VifType.BRIDGE:
            bridge = facts.ovs_bridge
            return ("bridge", tap, True, True, facts.libvirt_bandwidth, tap, True, bridge, True)
        case VifType.ETHERNET:
            return ("ethernet", tap, True, False, tc, tap, True, "", False)
        case VifType.HYBRID:
            qvo, qbr = port.prefixed_name("qvo"), port.prefixed_name("qbr")
            return ("bridge", tap, True, True, tc, qvo, False, qbr, False)
        case VifType.DIRECT:
            return ("direct", f"macvtap{index}", True, False, tc, "", False, "", False)
        case VifType.VHOSTUSER:
            vhu = port.prefixed_name("vhu")
            return ("vhostuser", vhu, False, False, None, vhu, True, "", False)
    return ("hostdev", "", False, False, None, "", False, "", False)


def wire_ports(instance: Instance, facts: HostFacts) -> tuple[PortWiring, ...]:
    return tuple(wire_port(port, i, facts) for i, port in enumerate(instance.ports))


def wire_disks(instance: Instance, facts: HostFacts) -> tuple[DiskWiring, ...]:
    """Root disk, ephemeral and swap from the image backend (flavor limits), then volumes
    (Cinder limits only: Nova never merges the two, upstream-mapping section 2.4)."""
    flavor = instance.flavor
    base = f"{facts.instances_path}/{instance.uuid}"
    image_disks = [("disk", "qcow2")]
    if flavor.ephemeral_gb:
        image_disks.append(("disk.eph0", "qcow2"))
    if flavor.swap_mb:
        image_disks.append(("disk.swap", "qcow2"))
    disks: list[DiskWiring] = []
    for name, fmt in image_disks:
        i = len(disks)
        disks.append(
            DiskWiring(
                disk_target(i),
                i,
                f"virtio-disk{i}",
                f"drive-virtio-disk{i}",
                f"{base}/{name}",
                fmt,
                "image",
                flavor.qos.disk,
                declared_by=f"flavor {flavor.name}",
            )
        )
    for volume in instance.volumes:
        i = len(disks)
        spec = volume.qos.name or volume.volume_type or "volume type"
        disks.append(
            DiskWiring(
                disk_target(i),
                i,
                f"virtio-disk{i}",
                f"drive-virtio-disk{i}",
                f"/dev/disk/by-id/virtio-{volume.id[:20]}",
                "raw",
                "volume",
                volume.qos.iotune,
                volume_id=volume.id,
                declared_by=f"Cinder QoS spec {spec}",
            )
        )
    return tuple(disks)
