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
    vif = port.vif_type or facts.vif_type
    policy, source = port.effective_policy()
    tap = port.tap_name
    if vif is VifType.BRIDGE:
        return PortWiring(
            port,
            index,
            vif,
            "bridge",
            tap,
            True,
            True,
            facts.libvirt_bandwidth,
            tap,
            True,
            facts.ovs_bridge,
            True,
            policy,
            source,
        )
    if vif is VifType.ETHERNET:
        return PortWiring(
            port,
            index,
            vif,
            "ethernet",
            tap,
            True,
            False,
            LibvirtBandwidthBackend.TC,
            tap,
            True,
            "",
            False,
            policy,
            source,
        )
    if vif is VifType.HYBRID:
        return PortWiring(
            port,
            index,
            vif,
            "bridge",
            tap,
            True,
            True,
            LibvirtBandwidthBackend.TC,
            port.prefixed_name("qvo"),
            False,
            port.prefixed_name("qbr"),
            False,
            policy,
            source,
        )
    if vif is VifType.DIRECT:
        return PortWiring(
            port,
            index,
            vif,
            "direct",
            f"macvtap{index}",
            True,
            False,
            LibvirtBandwidthBackend.TC,
            "",
            False,
            "",
            False,
            policy,
            source,
        )
    if vif is VifType.VHOSTUSER:
        vhu = port.prefixed_name("vhu")
        return PortWiring(
            port,
            index,
            vif,
            "vhostuser",
            vhu,
            False,
            False,
            None,
            vhu,
            True,
            "",
            False,
            policy,
            source,
        )
    return PortWiring(
        port,
        index,
        vif,
        "hostdev",
        "",
        False,
        False,
        None,
        "",
        False,
        "",
        False,
        policy,
        source,
    )


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
