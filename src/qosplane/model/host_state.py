"""What a host enforces, in the agent's own terms: desired (compiled from a plan for this
host's capabilities) and observed (read back from the kernel) share these types, so drift
is a plain comparison.

Directions are guest-relative, as everywhere in the model: `to_instance` is enforced on
the host-side device's egress (its root qdisc), `from_instance` on its ingress.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qosplane.model.plan import OvnQosRow
from qosplane.model.units import (
    Bits,
    BitsPerSecond,
    Bytes,
    Kilobits,
    KilobitsPerSecond,
    Packets,
    PacketsPerSecond,
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the probe found this kernel can do (host/probe.py tries each once)."""

    htb: bool = True
    pfifo: bool = True
    ifb_mirred: bool = True  # ingress qdisc + u32 + mirred redirect to an ifb device
    tc_police: bool = False  # act_police
    sfq: bool = False
    nft_bridge: bool = False  # nftables bridge-family forward chains (DSCP marking)
    cgroup_v1_cpu: bool = False
    cgroup_v2: bool = False  # a cgroup2 hierarchy at /sys/fs/cgroup
    cgroup_v2_cpu: bool = False  # ... with its cpu controller (cpu.weight, cpu.max)
    qemu_storage_daemon: bool = False  # throttled NBD exports of volumes
    # Ports are wired into an Open vSwitch bridge the agent runs (--switch ovs): their QoS
    # is OVS's (linux-htb QoS rows, OpenFlow 1.3 meters, DSCP flows), not tc on the tap.
    ovs_switch: bool = False
    # Ports are logical switch ports of an OVN the agent runs (--switch ovn): their QoS is
    # the Northbound QoS rows ML2/OVN writes, which ovn-controller turns into meters.
    ovn_switch: bool = False
    # Instances are libvirt domains the agent defines (--hypervisor libvirt): CPU and
    # image-disk limits are libvirt's cputune and iotune, re-tuned live through its API.
    libvirt: bool = False
    # ... booting real guests, each attached volume a disk of the domain (the export its
    # source, as Nova attaches a Cinder volume): its front-end limits are that disk's
    # <iotune>, as Nova writes them, not the export's throttle.
    guest_volumes: bool = False
    # The egress capacity of each network's uplink, as an operator configures Neutron's
    # resource_provider_bandwidths (0: none configured, minimum bandwidth stays
    # Placement's), and what an over-commit of it does: refused or only reported.
    uplink_bits_per_s: BitsPerSecond = BitsPerSecond(0)  # noqa: RUF009 - NewType: identity
    refuse_overcommit: bool = True

    @property
    def switched(self) -> bool:
        """Ports are in a switch (OVS or OVN) that holds their QoS, not tc on the tap."""
        return self.ovs_switch or self.ovn_switch


class Mechanism(enum.Enum):
    SHAPE_HTB = "htb shaper on the device"  # to-instance
    SHAPE_IFB = "ifb redirect + htb shaper"  # from-instance, shapes (queues) instead of policing
    POLICE_TC = "tc police"  # from-instance, drops
    MARK_NFT = "nftables bridge forward, ip dscp set"
    LIMIT_NFT_PACKETS = "nftables bridge forward, limit rate over N/second drop"
    CGROUP_CPU = "cgroup cpu controller"
    CGROUP_V2_CPU = "cgroup v2 cpu controller (cpu.weight, cpu.max)"
    QEMU_THROTTLE = "qemu-storage-daemon throttle-group, NBD export"
    LIBVIRT_CPUTUNE = "libvirt cputune (virDomainSetSchedulerParameters)"
    LIBVIRT_IOTUNE = "libvirt iotune (virDomainSetBlockIoTune, QEMU throttling)"
    SHAPE_OVS_HTB = "OVS QoS linux-htb, queue 0 on the port"  # to-instance
    POLICE_OVS_METER = "OpenFlow 1.3 meter, drop band"  # from-instance, drops
    MARK_OVS_FLOW = "OpenFlow flow, set_field ip_dscp (mod_nw_tos)"
    LIMIT_OVS_PKTPS_METER = "OpenFlow 1.3 meter, pktps drop band"  # either way, drops
    GUARANTEE_UPLINK_HTB = "htb class on the network's uplink, rate = the minimum, ceil = the link"
    POLICE_OVN_METER = "OVN NB QoS row bandwidth, ovn-controller meter (drop band)"
    MARK_OVN = "OVN NB QoS row action dscp, ovn-controller ip_dscp load"


@dataclass(frozen=True, slots=True)
class Shaper:
    """htb root 1: with one class 1:1 (default) and a pfifo leaf 2:."""

    rate_bits_per_s: BitsPerSecond
    ceil_bits_per_s: BitsPerSecond
    burst_bytes: Bytes


@dataclass(frozen=True, slots=True)
class PacketLimit:
    """A packet rate cap: what the bridge forwards beyond it is dropped."""

    rate_packets_per_s: PacketsPerSecond
    burst_packets: Packets


@dataclass(frozen=True, slots=True)
class DeviceQos:
    device: str  # host-side interface, tap + first 11 characters of the port id
    to_instance: Shaper | None = None
    from_instance: Shaper | None = None  # applied on `ifb`, fed by a mirred redirect
    dscp: int | None = None  # marks what the instance sends
    # Neutron's packet_rate_limit, in the bridge's nftables chain of the device.
    packets_to_instance: PacketLimit | None = None
    packets_from_instance: PacketLimit | None = None

    def packet_limits(self) -> dict[tuple[str, bool], PacketLimit]:
        """Its packet limits keyed as the bridge table holds them: (device, to it?)."""
        both = ((True, self.packets_to_instance), (False, self.packets_from_instance))
        return {(self.device, to): limit for to, limit in both if limit is not None}

    @property
    def ifb(self) -> str:
        """The ifb device for from-instance shaping: `ifb` + the tap's port-id part (14
        characters, under IFNAMSIZ)."""
        return "ifb" + self.device.removeprefix("tap")


@dataclass(frozen=True, slots=True)
class ObservedDevice:
    """What the kernel shows for one host-side device, in the desired state's terms."""

    qos: DeviceQos
    exists: bool = True
    redirect_to: str | None = None  # the ifb its ingress filter redirects to, if any
    root_htb: bool = False  # an htb root qdisc 1: is there (with or without our class)
    ingress: bool = False  # an ingress qdisc is there (with or without our filter)
    ifb_root_htb: bool = False
    other_qdiscs: tuple[str, ...] = ()  # qdiscs qosplane does not write (sfq, fq_codel...)


@dataclass(frozen=True, slots=True)
class OvsQueue:
    """A linux-htb QoS row with queue 0 on an OVS port: OVS writes it as tc htb on the
    port's device (class 1:1 ceil = max-rate, burst in bits)."""

    max_rate_bits_per_s: BitsPerSecond
    burst_bits: Bits


@dataclass(frozen=True, slots=True)
class Meter:
    """An OpenFlow 1.3 meter with one drop band: a policer in the userspace datapath.
    kbps means 1000 bit/s; burst_size is in kbit."""

    rate_kilobits_per_s: KilobitsPerSecond
    burst_kilobits: Kilobits


@dataclass(frozen=True, slots=True)
class PortQos:
    """One port's QoS when an OVS bridge wires it, guest-relative like DeviceQos."""

    port: str  # the tap, also the OVS Port and Interface name
    to_instance: OvsQueue | None = None
    from_instance: Meter | None = None  # metered by the flows matching in_port=port
    dscp: int | None = None
    # Neutron's packet_rate_limit: pktps meters, from the instance on its in_port, to it
    # on its MAC (as Neutron's OVS agent matches them, br_int.py apply_meter_to_port).
    packets_from_instance: PacketLimit | None = None
    packets_to_instance: PacketLimit | None = None


@dataclass(frozen=True, slots=True)
class OvsFlow:
    """One flow in the only shapes the agent writes: match a port's OpenFlow number (and
    IPv4 when it marks) or its network and MAC as destination, then a meter, a DSCP
    set_field or the port's network as metadata, then the next table or NORMAL. A flow read back in any other shape keeps what differs in
    `unrecognised`, so it never equals a flow the agent renders and is rewritten."""

    cookie: int
    priority: int
    in_port: int = 0  # 0: not matched
    ipv4_only: bool = False
    meter_id: int | None = None
    set_dscp: int | None = None
    table: int = 0
    eth_dst: str | None = None  # lower-case colon form, as OVS prints it
    goto_table: int | None = None  # None: output NORMAL
    metadata: int | None = None  # matched under OVS_METADATA_MASK: the sender's network
    write_metadata: int | None = None  # written under that mask: the port's network
    unrecognised: str = ""


@dataclass(frozen=True, slots=True)
class MeterPut:
    """Add (or modify, when the id exists) a drop meter: kbps for a Meter, pktps for a
    PacketLimit."""

    meter_id: int
    meter: Meter | PacketLimit
    modify: bool = False


@dataclass(frozen=True, slots=True)
class MeterDelete:
    meter_id: int


@dataclass(frozen=True, slots=True)
class FlowsDelete:
    """Every flow with this exact cookie, in every table."""

    cookie: int


@dataclass(frozen=True, slots=True)
class FlowAdd:
    flow: OvsFlow


# One OpenFlow change, described as a value (like ovsdbapp's commands) and encoded into a
# message only by the host's OpenFlow channel.
OpenFlowChange = MeterPut | MeterDelete | FlowsDelete | FlowAdd


@dataclass(frozen=True, slots=True)
class Guarantee:
    """A port's minimum rate from the instance, held on its network's uplink."""

    device: str  # the tap
    rate_bits_per_s: BitsPerSecond


@dataclass(frozen=True, slots=True)
class UplinkClass:
    """One guaranteed port's class under the link: its minimum as rate, the link as
    ceil, what it sends found by its MAC (u32 `match ether src`)."""

    minor: int
    mac: str  # lower-case colon form
    rate_bits_per_s: BitsPerSecond


@dataclass(frozen=True, slots=True)
class UplinkQos:
    """The htb on an uplink's egress: 1:1 at the link's capacity, one class per
    guaranteed port, and the default class 1:2 for everything else with what the
    guarantees leave (at least 1% of the link), every class borrowing up to the link."""

    device: str
    capacity_bits_per_s: BitsPerSecond
    classes: tuple[UplinkClass, ...] = ()
    # Read back: the default class's rate as tc prints it. A desired hierarchy derives its
    # own (None); drift compares the two.
    default_bits_per_s: BitsPerSecond | None = None

    @property
    def default_rate_bits_per_s(self) -> BitsPerSecond:
        left = self.capacity_bits_per_s - sum(c.rate_bits_per_s for c in self.classes)
        return BitsPerSecond(max(left, default_share_bits_per_s(self.capacity_bits_per_s)))


def default_share_bits_per_s(capacity_bits_per_s: BitsPerSecond) -> BitsPerSecond:
    """What an uplink's default class always keeps: 1% of the link, at least 1 bit/s."""
    return BitsPerSecond(max(capacity_bits_per_s // 100, 1))


@dataclass(frozen=True, slots=True)
class OvnPortQos:
    """One port's QoS when OVN wires it, guest-relative like PortQos: each direction is a
    Northbound QoS row's bandwidth, which ovn-controller makes a drop-band meter of, and
    the mark is the from-instance row's action. A Meter's burst of 0 means the row has no
    burst column (ML2/OVN writes one only when max_burst_kbps is not 0)."""

    port: str  # the tap; its logical switch port is the Neutron port (iface-id)
    to_instance: Meter | None = None
    from_instance: Meter | None = None
    dscp: int | None = None


@dataclass(frozen=True, slots=True)
class ObservedOvnPort:
    """What the OVN Northbound database and br-int show for one port."""

    qos: OvnPortQos
    exists: bool = True  # the OVS port and its logical switch port are there
    rows_match: bool = True  # its QoS rows are exactly the ones `qos` renders to
    # The meters ovn-controller made for its rows, read back from br-int: to, from.
    meters: tuple[Meter | None, Meter | None] = (None, None)
    rows: tuple[OvnQosRow, ...] = ()  # its rows as the Northbound holds them


@dataclass(frozen=True, slots=True)
class ObservedPort:
    """What OVSDB and the OpenFlow tables show for one port, in PortQos's terms."""

    qos: PortQos
    exists: bool = True  # the Port row is on the bridge
    flows_match: bool = True  # its flows are exactly the ones `qos` renders to


CGROUP_V1_DEFAULT_SHARES = 1024  # the kernel's cpu.shares for a new group
CGROUP_V2_DEFAULT_WEIGHT = 100  # the kernel's cpu.weight for a new group
CFS_DEFAULT_PERIOD_US = 100_000  # the kernel's cpu.cfs_period_us (and cpu.max's period)


@dataclass(frozen=True, slots=True)
class CpuQos:
    """`shares` is the weight among siblings: v1 cpu.shares, or on v2 cpu.weight, which
    libvirt writes with the same number (vircgroupv2.c: no conversion); quota and period
    are v1's cfs files or v2's cpu.max "QUOTA PERIOD" ("max" for none)."""

    group: str  # the instance's cgroup, relative to the agent's cgroup root
    shares: int | None = None
    cfs_quota_us: int | None = None
    cfs_period_us: int | None = None
    v2: bool = False

    @property
    def default_shares(self) -> int:
        return CGROUP_V2_DEFAULT_WEIGHT if self.v2 else CGROUP_V1_DEFAULT_SHARES


@dataclass(frozen=True, slots=True)
class VolumeQos:
    volume_id: str
    device: str  # the guest's target, vdb
    size_gb: int
    limits: tuple[tuple[str, int], ...] = ()  # QEMU throttle-group keys: x-iops-read=100

    def limits_map(self) -> dict[str, int]:
        return dict(self.limits)


LIBVIRT_DEFAULT_PERIOD_US = 100_000
LIBVIRT_UNLIMITED_QUOTA = -1


@dataclass(frozen=True, slots=True)
class DomainQos:
    """A libvirt domain's QoS, in the libvirt API's own parameter names: scheduler
    (`cpu_shares`, `vcpu_quota`, `vcpu_period`) and per image disk the `<iotune>` values
    (`read_bytes_sec`...; 0 = unlimited, as virDomainGetBlockIoTune reports it)."""

    name: str
    plan_xml: str  # the plan's domain, which the driver adapts to this host and defines
    scheduler: tuple[tuple[str, int], ...] = ()
    iotune: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()  # target -> values
    # target -> volume id: the disks that are attached volumes (Capabilities.guest_volumes),
    # attached and detached live as the plan's volumes change.
    volumes: tuple[tuple[str, str], ...] = ()

    def iotune_map(self) -> dict[str, dict[str, int]]:
        return {target: dict(values) for target, values in self.iotune}


@dataclass(frozen=True, slots=True)
class InstanceQos:
    name: str  # instance-0000002a
    devices: tuple[DeviceQos, ...] = ()
    cpu: CpuQos | None = None
    volumes: tuple[VolumeQos, ...] = ()
    ports: tuple[PortQos, ...] = ()  # OVS-wired ports (Capabilities.ovs_switch)
    ovn_ports: tuple[OvnPortQos, ...] = ()  # OVN-wired ports (Capabilities.ovn_switch)
    guarantees: tuple[Guarantee, ...] = ()  # minimum bandwidth on the uplinks
    domain: DomainQos | None = None  # a libvirt domain (Capabilities.libvirt)


class Outcome(enum.Enum):
    APPLIED = "applied"
    NOT_ENFORCEABLE = "not enforceable here"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What happened to one effective limit of the plan on this host."""

    kind: str  # bandwidth, dscp, cpu_shares, ...
    device: str
    direction: str
    outcome: Outcome
    mechanism: str = ""
    polices: bool = False  # True: excess is dropped; False: queued (shaped)
    reason: str = ""
    # What the host was seen holding for it after the pass, where the agent reads back
    # state another daemon derives (OVN: the Northbound row and ovn-controller's meter).
    held_as: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "device": self.device,
            "direction": self.direction,
            "status": self.outcome.value,
            "mechanism": self.mechanism,
            "polices": self.polices,
            "reason": self.reason,
        }
        if self.held_as:
            out["held_as"] = self.held_as
        return out
