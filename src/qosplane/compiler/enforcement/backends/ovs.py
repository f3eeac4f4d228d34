"""Open vSwitch: the port's linux-htb QoS row and queue to the instance, an OpenFlow 1.3
meter for what it sends, a set_field flow for its DSCP mark (docs/agent.md says why meters
replace `ingress_policing_rate` on the userspace datapath). Only when the host's ports are
OVS ports (Capabilities.ovs_switch): then it owns every network limit of the instance.
Also the pure renderings the OVS driver compares and writes (flows, cookies, meters as
typed values; ovs-ofctl text for tools) and the diff from what a bridge holds to them."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

from qosplane.compiler.enforcement.base import (
    FROM_GUEST,
    TO_GUEST,
    Claim,
    Decision,
    Desired,
    DeviceParts,
    packet_limit_of,
    shaper_of,
)
from qosplane.model.host_state import (
    Capabilities,
    FlowAdd,
    FlowsDelete,
    Mechanism,
    Meter,
    MeterDelete,
    MeterPut,
    OpenFlowChange,
    OvsFlow,
    OvsQueue,
    PacketLimit,
    PortQos,
    Shaper,
)
from qosplane.model.plan import DscpMark, PacketRate, Rate
from qosplane.model.units import (
    Kilobits,
    Packets,
    bits_per_s_to_kilobits_per_s,
    bits_to_kilobits,
    bytes_to_bits,
)


class OvsBackend:
    name = "ovs"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if not caps.ovs_switch:
            return None
        limit = claim.limit
        if claim.kind == "bandwidth" and claim.direction == TO_GUEST:
            if not caps.htb:  # OVS's linux-htb QoS is the kernel's htb
                return Decision.refused("this kernel has no htb")
            assert isinstance(limit, Rate)
            desired.shape(claim.device, True, shaper_of(limit, policer=False))
            return Decision.applied(Mechanism.SHAPE_OVS_HTB.value)
        if claim.kind == "bandwidth" and claim.direction == FROM_GUEST:
            assert isinstance(limit, Rate)
            desired.shape(claim.device, False, shaper_of(limit, policer=True))
            return Decision.applied(Mechanism.POLICE_OVS_METER.value, polices=True)
        if claim.kind == "dscp" and claim.direction == FROM_GUEST:
            assert isinstance(limit, DscpMark)
            desired.mark(claim.device, limit.dscp)
            return Decision.applied(Mechanism.MARK_OVS_FLOW.value)
        if claim.kind == "packet_rate" and claim.direction in (TO_GUEST, FROM_GUEST):
            assert isinstance(limit, PacketRate)
            packets = packet_limit_of(limit, OVS_METER_BURST_PACKETS_MAX, "an OVS meter's")
            if isinstance(packets, str):
                return Decision.refused(packets)
            desired.limit_packets(claim.device, claim.direction == TO_GUEST, packets)
            return Decision.applied(Mechanism.LIMIT_OVS_PKTPS_METER.value, polices=True)
        return None


def ports(desired: Desired) -> tuple[PortQos, ...]:
    return tuple(port_qos(d, parts) for d, parts in sorted(desired.devices.items()))


OVS_COOKIE_TAG = 0x9051  # the top 16 bits of every flow cookie the agent writes
OVS_COOKIE_MASK = 0xFFFF << 48
OVS_COOKIE_MATCH = f"cookie={OVS_COOKIE_TAG << 48:#x}/{OVS_COOKIE_MASK:#x}"  # ovs-ofctl's form
OVS_BASE_COOKIE = OVS_COOKIE_TAG << 48  # the bridge's pipeline flows, no port's
OVS_FLOW_PRIORITY_IP = 200
OVS_FLOW_PRIORITY_ALL = 190
OVS_FLOW_PRIORITY_PACKETS = 100  # Neutron's, br_int.py apply_meter_to_port
OVS_FLOW_PRIORITY_CLASSIFY = 100
# Table 0 writes each packet's network (its port's local VLAN tag) into these metadata
# bits, so table 60 meters a packet to a MAC only when it comes from the same network, as
# Neutron's agent matches the local VLAN: a port on another network cannot spend an
# instance's packet budget, and equal MACs on two networks stay apart.
OVS_METADATA_MASK = 0xFFF
# The agent's pipeline, with the table numbers of Neutron's OVS agent (neutron 2131d26f,
# neutron_lib/plugins/ml2/ovs_constants.py: PACKET_RATE_LIMIT 58, BANDWIDTH_RATE_LIMIT 59,
# TRANSIENT_TABLE 60): table 0 sends everything to 58, which meters each port's packet
# rate from the instance; 59 meters its bandwidth and marks its DSCP; 60 meters the packet
# rate to an instance by its MAC, then NORMAL switching. A packet meets one meter per
# table, so the three limits of a port can all hold at once. Unlike Neutron, the ingress
# packet meter has a table of its own: in Neutron's single table 58 a packet from one
# limited port to another meets only one of the two meters.
OVS_TABLE_PACKETS_FROM = 58
OVS_TABLE_BANDWIDTH_FROM = 59
OVS_TABLE_TO = 60
# Meter ids: a port's OpenFlow number (below 0xff00) for its bandwidth meter, and the
# same number in a band of its own for each packet meter: unique while the port exists.
OVS_METER_PACKETS_FROM_BASE = 1 << 20
OVS_METER_PACKETS_TO_BASE = 2 << 20
OVS_METER_BURST_PACKETS_MAX = Packets((1 << 32) - 1)  # ofp_meter_band_drop.burst_size


def ovs_queue(shaper: Shaper) -> OvsQueue:
    """The sustained rate is the cap (libvirt's root class cannot borrow up to its peak,
    so neither does this queue); the burst carries over, in bits as OVS wants it."""
    return OvsQueue(shaper.rate_bits_per_s, bytes_to_bits(shaper.burst_bytes))


def ovs_meter(shaper: Shaper) -> Meter:
    """A policer's rate and bucket as meter kbps and kbit (1000-based, rounded down, at
    least 1 kbit: OVS refuses a zero band)."""
    return Meter(
        bits_per_s_to_kilobits_per_s(shaper.rate_bits_per_s),
        max(bits_to_kilobits(bytes_to_bits(shaper.burst_bytes)), Kilobits(1)),
    )


def port_qos(port: str, parts: DeviceParts) -> PortQos:
    return PortQos(
        port,
        ovs_queue(parts.to_instance) if parts.to_instance is not None else None,
        ovs_meter(parts.from_instance) if parts.from_instance is not None else None,
        parts.dscp,
        parts.packets_from_instance,
        parts.packets_to_instance,
    )


def ovs_port_cookie(port: str) -> int:
    """The cookie of a port's flows: the agent's tag in the top 16 bits (all its flows are
    found with one cookie mask) and a hash of the port name below."""
    low = int.from_bytes(hashlib.blake2b(port.encode(), digest_size=6).digest(), "big")
    return (OVS_COOKIE_TAG << 48) | low


def ovs_meter_ids(ofport: int) -> tuple[int, int, int]:
    """A port's meter ids: bandwidth from it, packets from it, packets to it."""
    return ofport, OVS_METER_PACKETS_FROM_BASE | ofport, OVS_METER_PACKETS_TO_BASE | ofport


def ovs_base_flows() -> frozenset[OvsFlow]:
    """The pipeline every packet takes through the agent's bridge; each table's lowest
    flow passes a packet no port flow matched on to the next."""
    return frozenset(
        {
            OvsFlow(OVS_BASE_COOKIE, 0, goto_table=OVS_TABLE_PACKETS_FROM),
            OvsFlow(
                OVS_BASE_COOKIE,
                0,
                table=OVS_TABLE_PACKETS_FROM,
                goto_table=OVS_TABLE_BANDWIDTH_FROM,
            ),
            OvsFlow(OVS_BASE_COOKIE, 0, table=OVS_TABLE_BANDWIDTH_FROM, goto_table=OVS_TABLE_TO),
            OvsFlow(OVS_BASE_COOKIE, 0, table=OVS_TABLE_TO),
        }
    )


def ovs_port_flows(
    qos: PortQos, ofport: int, mac: str | None = None, vlan: int | None = None
) -> frozenset[OvsFlow]:
    """A port's flows. `ofport`: the port's OpenFlow number, matched on and the root of
    its meter ids (a re-plugged port gets new ones); `vlan`: its network's local tag,
    which every packet it sends carries as metadata (None: a port with no tag, whose
    packets carry none); `mac`: its address, which a packet rate to it is matched on with
    its network (both required then). Every plugged port has its table-0 flow, QoS or
    not, so a packet rate to an instance counts what any port of its network sends."""
    bandwidth_id, packets_from_id, packets_to_id = ovs_meter_ids(ofport)
    meter_id = bandwidth_id if qos.from_instance is not None else None
    cookie = ovs_port_cookie(qos.port)
    after_bandwidth = OVS_TABLE_TO
    flows = []
    if vlan is not None:
        flows.append(
            OvsFlow(
                cookie,
                OVS_FLOW_PRIORITY_CLASSIFY,
                ofport,
                goto_table=OVS_TABLE_PACKETS_FROM,
                write_metadata=vlan,
            )
        )
    if qos.packets_from_instance is not None:
        flows.append(
            OvsFlow(
                cookie,
                OVS_FLOW_PRIORITY_PACKETS,
                ofport,
                meter_id=packets_from_id,
                table=OVS_TABLE_PACKETS_FROM,
                goto_table=OVS_TABLE_BANDWIDTH_FROM,
            )
        )
    if qos.dscp is not None:
        flows.append(
            OvsFlow(
                cookie,
                OVS_FLOW_PRIORITY_IP,
                ofport,
                True,
                meter_id,
                qos.dscp,
                table=OVS_TABLE_BANDWIDTH_FROM,
                goto_table=after_bandwidth,
            )
        )
    if meter_id is not None:
        flows.append(
            OvsFlow(
                cookie,
                OVS_FLOW_PRIORITY_ALL,
                ofport,
                meter_id=meter_id,
                table=OVS_TABLE_BANDWIDTH_FROM,
                goto_table=after_bandwidth,
            )
        )
    if qos.packets_to_instance is not None:
        if mac is None or vlan is None:
            raise ValueError(f"{qos.port}: a packet rate to the instance needs its MAC and VLAN")
        flows.append(
            OvsFlow(
                cookie,
                OVS_FLOW_PRIORITY_PACKETS,
                meter_id=packets_to_id,
                table=OVS_TABLE_TO,
                eth_dst=mac.lower(),
                metadata=vlan,
            )
        )
    return frozenset(flows)


def ovs_port_meters(qos: PortQos, ofport: int) -> dict[int, Meter | PacketLimit]:
    """The meters a port's flows name, by id."""
    ids = ovs_meter_ids(ofport)
    wanted = (qos.from_instance, qos.packets_from_instance, qos.packets_to_instance)
    return {i: m for i, m in zip(ids, wanted, strict=True) if m is not None}


def ovs_flow_text(flow: OvsFlow) -> str:
    """The flow as `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` prints it (and
    add-flow accepts it): for tools, tests and the benchmark's baseline."""
    match = ["ip"] if flow.ipv4_only else []
    match += (
        [f"metadata={flow.metadata:#x}/{OVS_METADATA_MASK:#x}"] if flow.metadata is not None else []
    )
    match += [f"in_port={flow.in_port}"] if flow.in_port else []
    match += [f"dl_dst={flow.eth_dst}"] if flow.eth_dst is not None else []
    actions = [f"meter:{flow.meter_id}"] if flow.meter_id is not None else []
    actions += [f"set_field:{flow.set_dscp}->ip_dscp"] if flow.set_dscp is not None else []
    if flow.write_metadata is not None:
        actions.append(f"write_metadata:{flow.write_metadata:#x}/{OVS_METADATA_MASK:#x}")
    actions.append("NORMAL" if flow.goto_table is None else f"goto_table:{flow.goto_table}")
    table = f" table={flow.table}," if flow.table else ""
    head = ",".join([f"priority={flow.priority}", *match])
    return f"cookie={flow.cookie:#x},{table} {head} actions={','.join(actions)}"


def ovs_meter_spec(meter_id: int, meter: Meter | PacketLimit) -> str:
    """`ovs-ofctl -O OpenFlow13 add-meter/mod-meter` argument (tools and the benchmark's
    baseline; the agent sends meters as OpenFlow messages)."""
    if isinstance(meter, PacketLimit):
        return (
            f"meter={meter_id},pktps,burst,band=type=drop,rate={meter.rate_packets_per_s},"
            f"burst_size={meter.burst_packets}"
        )
    return (
        f"meter={meter_id},kbps,burst,band=type=drop,rate={meter.rate_kilobits_per_s},"
        f"burst_size={meter.burst_kilobits}"
    )


def openflow_changes(
    flows: Mapping[int, Collection[OvsFlow]],
    meters: Mapping[int, Meter | PacketLimit | None],
    wanted_flows: Mapping[int, Collection[OvsFlow]],
    wanted_meters: Mapping[int, Meter | PacketLimit],
    kept_cookies: Collection[int] = (),
    kept_meters: Collection[int] = (),
) -> tuple[OpenFlowChange, ...]:
    """What brings a bridge's agent flows (cookie -> flows) and meters (id -> meter, None
    for one of a shape the agent never writes) to the wanted ones, in the order OVS needs:
    meters first (a flow naming a missing meter is refused), then each changed cookie's
    old flows deleted before its new ones come, then meters nobody wants (deleting a
    meter also deletes the flows using it). Cookies and meters kept (their server failed
    this pass) are not touched; a cookie neither wanted nor kept loses its flows."""
    changes: list[OpenFlowChange] = []
    for meter_id, meter in sorted(wanted_meters.items()):
        if meter_id in meters and meters[meter_id] == meter:
            continue
        changes.append(MeterPut(meter_id, meter, modify=meter_id in meters))
    for cookie in sorted(set(flows) | set(wanted_flows)):
        if cookie in kept_cookies:
            continue
        now, want = frozenset(flows.get(cookie, ())), frozenset(wanted_flows.get(cookie, ()))
        if now == want:
            continue
        if now:
            changes.append(FlowsDelete(cookie))
        changes += [FlowAdd(f) for f in sorted(want, key=lambda f: (f.table, f.priority))]
    for meter_id in sorted(set(meters) - set(wanted_meters) - set(kept_meters)):
        changes.append(MeterDelete(meter_id))
    return tuple(changes)
