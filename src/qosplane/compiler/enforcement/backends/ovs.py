"""Open vSwitch: the port's linux-htb QoS row and queue to the instance, an OpenFlow 1.3
meter for what it sends, a set_field flow for its DSCP mark (docs/agent.md says why meters
replace `ingress_policing_rate` on the userspace datapath). Only when the host's ports are
OVS ports (Capabilities.ovs_switch): then it owns every network limit of the instance.
Also the pure renderings the OVS driver compares and writes: flows, cookies, meter specs."""

from __future__ import annotations

import hashlib

from qosplane.compiler.enforcement.base import (
    FROM_GUEST,
    TO_GUEST,
    Claim,
    Decision,
    Desired,
    DeviceParts,
    shaper_of,
)
from qosplane.model.host_state import Capabilities, Mechanism, Meter, OvsQueue, PortQos, Shaper
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
OVS_COOKIE_MATCH = f"cookie={OVS_COOKIE_TAG << 48:#x}/0xffff000000000000"
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


def ovs_port_cookie(port: str) -> str:
    """The cookie of a port's flows, as ovs-ofctl prints it: the agent's tag in the top 16
    bits (all its flows are found with one cookie mask) and a hash of the port name."""
    low = int.from_bytes(hashlib.blake2b(port.encode(), digest_size=6).digest(), "big")
    return f"{(OVS_COOKIE_TAG << 48) | low:#x}"


def ovs_port_flows(qos: PortQos, ofport: int) -> tuple[str, ...]:
    """A port's flows exactly as `ovs-ofctl --no-stats dump-flows` prints them (ovs-ofctl
    accepts the same text), so observed and desired compare as strings. `ofport`: the
    port's OpenFlow number, matched on and used as its meter id (unique on the bridge
    while the port exists, so meters never collide; a re-plugged port gets new ones)."""
    meter = [f"meter:{ofport}"] if qos.from_instance is not None else []
    cookie = ovs_port_cookie(qos.port)
    flows = []
    if qos.dscp is not None:
        actions = ",".join([*meter, f"set_field:{qos.dscp}->ip_dscp", "NORMAL"])
        flows.append(
            f"cookie={cookie}, priority={OVS_FLOW_PRIORITY_IP},ip,in_port={ofport} "
            f"actions={actions}"
        )
    if meter:
        flows.append(
            f"cookie={cookie}, priority={OVS_FLOW_PRIORITY_ALL},in_port={ofport} "
            f"actions={meter[0]},NORMAL"
        )
    return tuple(flows)


def ovs_meter_spec(meter_id: int, meter: Meter) -> str:
    """`ovs-ofctl -O OpenFlow13 add-meter/mod-meter` argument."""
    return (
        f"meter={meter_id},kbps,burst,band=type=drop,rate={meter.rate_kilobits_per_s},"
        f"burst_size={meter.burst_kilobits}"
    )
