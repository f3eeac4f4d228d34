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
    PortQos,
    Shaper,
)
from qosplane.model.plan import DscpMark, Rate
from qosplane.model.units import (
    Kilobits,
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
        return None


def ports(desired: Desired) -> tuple[PortQos, ...]:
    return tuple(port_qos(d, parts) for d, parts in sorted(desired.devices.items()))


OVS_COOKIE_TAG = 0x9051  # the top 16 bits of every flow cookie the agent writes
OVS_COOKIE_MASK = 0xFFFF << 48
OVS_COOKIE_MATCH = f"cookie={OVS_COOKIE_TAG << 48:#x}/{OVS_COOKIE_MASK:#x}"  # ovs-ofctl's form
OVS_FLOW_PRIORITY_IP = 200
OVS_FLOW_PRIORITY_ALL = 190


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
    )


def ovs_port_cookie(port: str) -> int:
    """The cookie of a port's flows: the agent's tag in the top 16 bits (all its flows are
    found with one cookie mask) and a hash of the port name below."""
    low = int.from_bytes(hashlib.blake2b(port.encode(), digest_size=6).digest(), "big")
    return (OVS_COOKIE_TAG << 48) | low


def ovs_port_flows(qos: PortQos, ofport: int) -> frozenset[OvsFlow]:
    """A port's flows. `ofport`: the port's OpenFlow number, matched on and used as its
    meter id (unique on the bridge while the port exists, so meters never collide; a
    re-plugged port gets new ones)."""
    meter_id = ofport if qos.from_instance is not None else None
    cookie = ovs_port_cookie(qos.port)
    flows = []
    if qos.dscp is not None:
        flows.append(OvsFlow(cookie, OVS_FLOW_PRIORITY_IP, ofport, True, meter_id, qos.dscp))
    if meter_id is not None:
        flows.append(OvsFlow(cookie, OVS_FLOW_PRIORITY_ALL, ofport, False, meter_id))
    return frozenset(flows)


def ovs_flow_text(flow: OvsFlow) -> str:
    """The flow as `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` prints it (and
    add-flow accepts it): for tools, tests and the benchmark's baseline."""
    match = "ip," if flow.ipv4_only else ""
    actions = [f"meter:{flow.meter_id}"] if flow.meter_id is not None else []
    actions += [f"set_field:{flow.set_dscp}->ip_dscp"] if flow.set_dscp is not None else []
    return (
        f"cookie={flow.cookie:#x}, priority={flow.priority},{match}in_port={flow.in_port} "
        f"actions={','.join([*actions, 'NORMAL'])}"
    )


def ovs_meter_spec(meter_id: int, meter: Meter) -> str:
    """`ovs-ofctl -O OpenFlow13 add-meter/mod-meter` argument (tools and the benchmark's
    baseline; the agent sends meters as OpenFlow messages)."""
    return (
        f"meter={meter_id},kbps,burst,band=type=drop,rate={meter.rate_kilobits_per_s},"
        f"burst_size={meter.burst_kilobits}"
    )


def openflow_changes(
    flows: Mapping[int, Collection[OvsFlow]],
    meters: Mapping[int, Meter | None],
    wanted_flows: Mapping[int, Collection[OvsFlow]],
    wanted_meters: Mapping[int, Meter],
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
        changes += [FlowAdd(f) for f in sorted(want, key=lambda f: (f.priority, f.in_port))]
    for meter_id in sorted(set(meters) - set(wanted_meters) - set(kept_meters)):
        changes.append(MeterDelete(meter_id))
    return tuple(changes)
