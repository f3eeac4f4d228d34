"""Minimum bandwidth on the data plane: each guaranteed port gets an htb class on its
network's uplink (the link every instance on the network sends out through) whose rate is
its minimum and whose ceil is the link, so it may borrow what others leave; everything
else shares the default class. Only on a Linux bridge or netns host whose operator gave
the uplink's capacity (Capabilities.uplink_bits_per_s, like Neutron's
resource_provider_bandwidths), and only from the instance: Neutron's own agents guarantee
egress only (the OVS agent's QoS/Queue min-rate on the physical bridge).

Admission control, which upstream leaves to Nova and Placement: the guarantees on one
uplink must fit in its capacity. In the order given, a guarantee that would not fit is
refused (it gets no class, and its rule says why), or, when the operator chose to only
report, kept with the over-commit named.

Also the pure rendering the tc driver writes (batch lines) and the admission itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qosplane.compiler.enforcement.base import FROM_GUEST, TO_GUEST, Claim, Decision, Desired
from qosplane.model.host_state import (
    Capabilities,
    Guarantee,
    Mechanism,
    UplinkClass,
    UplinkQos,
    default_share_bits_per_s,
)
from qosplane.model.plan import MinRate
from qosplane.model.units import BitsPerSecond, tc_rate_bits

NO_INGRESS_GUARANTEE = (
    "minimum bandwidth to the instance is Placement's only: no agent guarantees it on the "
    "data plane upstream either (Neutron's OVS agent: egress only)"
)
UPLINK_FIRST_MINOR = 0x10  # 1:1 is the link, 1:2 the default class
UPLINK_DEFAULT_MINOR = 2


class UplinkGuarantee:
    name = "uplink-guarantee"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "min_bandwidth" or caps.switched or not caps.uplink_bits_per_s:
            return None
        if claim.direction == TO_GUEST:
            return Decision.refused(NO_INGRESS_GUARANTEE)
        if claim.direction != FROM_GUEST:
            return None
        if not caps.htb:
            return Decision.refused("this kernel has no htb")
        limit = claim.limit
        assert isinstance(limit, MinRate)
        desired.guarantee(claim.device, BitsPerSecond(limit.min_rate_bits_per_s))
        return Decision.applied(Mechanism.GUARANTEE_UPLINK_HTB.value)


def guarantees(desired: Desired) -> tuple[Guarantee, ...]:
    return tuple(Guarantee(device, rate) for device, rate in sorted(desired.guaranteed.items()))


@dataclass(frozen=True, slots=True)
class Wanted:
    """A guarantee as the host sees it: whose, on which port, from which MAC."""

    instance: str
    device: str
    mac: str
    rate_bits_per_s: BitsPerSecond


def admit(
    uplink: str, capacity: BitsPerSecond, wanted: Sequence[Wanted], refuse: bool
) -> tuple[UplinkQos, dict[str, str]]:
    """The uplink's htb for `wanted` (in that order), and per refused or over-committed
    device why. The guarantees may take the link but the default class's share (1%, so
    unguaranteed traffic is never starved and the children's rates never exceed the
    link's). Classes are numbered in the devices' order: a port coming or going renumbers
    the ones after it, and the hierarchy is then rebuilt whole."""
    admitted: list[Wanted] = []
    said: dict[str, str] = {}
    usable = capacity - default_share_bits_per_s(capacity)
    held = 0
    for w in wanted:
        if held + w.rate_bits_per_s > usable:
            over = (
                f"uplink {uplink} carries {capacity} bit/s, {usable} of it for guarantees, "
                f"and already guarantees {held} bit/s: {w.rate_bits_per_s} bit/s more would "
                "over-commit it"
            )
            if refuse:
                said[w.device] = f"refused: {over}"
                continue
            said[w.device] = f"over-committed, reported not refused: {over}"
        admitted.append(w)
        held += w.rate_bits_per_s
    order = sorted(w.device for w in wanted)
    classes = tuple(
        UplinkClass(UPLINK_FIRST_MINOR + order.index(w.device), w.mac.lower(), w.rate_bits_per_s)
        for w in sorted(admitted, key=lambda w: w.device)
    )
    return UplinkQos(uplink, capacity, classes), said


def uplink_lines(qos: UplinkQos | None, device: str, present: bool) -> list[str]:
    """tc batch lines that make `device`'s egress exactly `qos` (None: nothing of the
    agent's): the hierarchy is rebuilt whole, its old root deleted first when `present`."""
    out = [f"qdisc del dev {device} root"] if present else []
    if qos is None:
        return out
    link = tc_rate_bits(qos.capacity_bits_per_s)
    out += [
        f"qdisc add dev {device} root handle 1: htb default {UPLINK_DEFAULT_MINOR:x}",
        f"class add dev {device} parent 1: classid 1:1 htb rate {link} ceil {link}",
        f"class add dev {device} parent 1:1 classid 1:{UPLINK_DEFAULT_MINOR:x} htb "
        f"rate {tc_rate_bits(qos.default_rate_bits_per_s)} ceil {link}",
    ]
    for c in qos.classes:
        out += [
            f"class add dev {device} parent 1:1 classid 1:{c.minor:x} htb "
            f"rate {tc_rate_bits(c.rate_bits_per_s)} ceil {link}",
            f"filter add dev {device} parent 1: protocol all prio 1 u32 "
            f"match ether src {c.mac} flowid 1:{c.minor:x}",
        ]
    return out


__all__ = [
    "NO_INGRESS_GUARANTEE",
    "UplinkGuarantee",
    "Wanted",
    "admit",
    "guarantees",
    "uplink_lines",
]
