"""The enforcement backend interface, and the desired state backends fill together.

A backend is asked about each effective limit of a plan, in registry order (registry.py):
- `None`: not a limit it holds (another kind, another direction, or its driver is not in
  use on this host); the next backend is asked;
- a `Decision`: it owns the limit. Applied, after writing the limit's desired state into
  `Desired`; or not enforceable here, with the reason (the host lacks what it needs).

Like os-vif's plugins, a backend is one small object behind one interface, found by name in
one list; unlike them it does no I/O: the agent's host drivers apply what `Desired` holds.
The rule that a device has one owner (a flavor quota and a Neutron rule on the same tap
become one shaper, the stricter one) is `Desired.shape`, the only place that writes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from qosplane.model.host_state import Capabilities, Outcome, PacketLimit, Shaper
from qosplane.model.plan import AttachedVolume, EffectiveLimit, Limit, PacketRate, Rate
from qosplane.model.units import BitsPerSecond, Bytes, Packets, PacketsPerSecond

TO_GUEST = "ingress"
FROM_GUEST = "egress"


def default_burst_bytes(rate_bits_per_s: BitsPerSecond) -> Bytes:
    """htb's own default when no burst is given: one timer tick of the rate plus one
    frame (rate / HZ + MTU, with HZ = 1000 and a 1514-byte frame)."""
    return Bytes(rate_bits_per_s // 8 // 1000 + 1514)


def shaper_of(limit: Rate, policer: bool) -> Shaper:
    """The shaper a host applies for a plan's rate limit."""
    cap = BitsPerSecond(limit.rate_bits_per_s)
    burst = limit.burst_bytes
    if policer:
        # A policer has no ceil: shape at the rate, with its bucket as the burst.
        return Shaper(cap, cap, Bytes(burst) if burst else default_burst_bytes(cap))
    ceil = BitsPerSecond(limit.ceil_bits_per_s or cap)
    return Shaper(cap, ceil, Bytes(burst) if burst else default_burst_bytes(cap))


# A Neutron rule without max_burst_kpps leaves the burst to the backend. nftables' own
# default (5 packets) holds a sender that sends in clumps well under the rate (measured:
# 2245 packet/s through a 3000 limit at 6000 offered), and an OVS meter without a burst
# flag takes a whole second of the rate; qosplane gives every packet limit a tenth of a
# second of packets, at least 5, whichever backend holds it.
PACKET_BURST_MIN = Packets(5)
DEFAULT_BURST_S_NUM, DEFAULT_BURST_S_DEN = 1, 10  # 0.1 s of the rate


def default_burst_packets(rate_packets_per_s: PacketsPerSecond) -> Packets:
    burst = rate_packets_per_s * DEFAULT_BURST_S_NUM // DEFAULT_BURST_S_DEN
    return Packets(max(PACKET_BURST_MIN, burst))


# nftables' limit and an OpenFlow meter band both keep the rate in 32 bits; Neutron takes
# a max_kpps whose thousandfold is larger.
PACKET_RATE_MAX = PacketsPerSecond((1 << 32) - 1)


def packet_limit_of(limit: PacketRate, burst_max: Packets, holders: str) -> PacketLimit | str:
    """The packet limit a host applies for a plan's packet rate, or why it cannot;
    `holders`: the possessive of what holds it ("nftables'")."""
    rate = PacketsPerSecond(limit.rate_packets_per_s)
    if rate < 1:
        # nftables and OVS refuse a rate of 0, and one bad rule would fail the whole set.
        return "a packet rate of 0 would drop every packet"
    if rate > PACKET_RATE_MAX:
        return f"a packet rate of {rate} packet/s is above {holders} {PACKET_RATE_MAX}"
    burst = Packets(limit.burst_packets or default_burst_packets(rate))
    if burst > burst_max:
        return f"a burst of {burst} packets is above {holders} {burst_max}"
    return PacketLimit(rate, burst)


@dataclass(frozen=True, slots=True)
class Claim:
    """One effective limit as the backends see it: on the host-side device that carries
    it (a port's limits all land on its tap), with the limit that holds in the plan."""

    entry: EffectiveLimit
    device: str
    limit: Limit

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def direction(self) -> str:
        return self.entry.direction


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    mechanism: str = ""
    polices: bool = False  # True: excess is dropped; False: queued (shaped)
    reason: str = ""

    @classmethod
    def applied(cls, mechanism: str, polices: bool = False, reason: str = "") -> Decision:
        return cls(Outcome.APPLIED, mechanism, polices, reason)

    @classmethod
    def refused(cls, reason: str) -> Decision:
        return cls(Outcome.NOT_ENFORCEABLE, reason=reason)


@dataclass(slots=True)
class DeviceParts:
    """What the backends want on one host-side device."""

    to_instance: Shaper | None = None
    from_instance: Shaper | None = None
    dscp: int | None = None
    packets_to_instance: PacketLimit | None = None
    packets_from_instance: PacketLimit | None = None


@dataclass(slots=True)
class Desired:
    """One instance's desired host state while the backends fill it."""

    volumes: dict[str, AttachedVolume]  # guest disk target -> the attached volume
    devices: dict[str, DeviceParts] = field(default_factory=dict)
    cpu: dict[str, int] = field(default_factory=dict)  # shares, cfs_quota_us, cfs_period_us
    iotune: dict[str, dict[str, int]] = field(default_factory=dict)  # image disk -> libvirt
    throttles: dict[str, dict[str, int]] = field(default_factory=dict)  # volume -> QEMU
    guaranteed: dict[str, BitsPerSecond] = field(default_factory=dict)  # tap -> minimum

    def guarantee(self, device: str, rate_bits_per_s: BitsPerSecond) -> None:
        """Of two minimums on one device (Neutron allows one per policy), the higher."""
        self.guaranteed[device] = max(
            rate_bits_per_s, self.guaranteed.get(device, BitsPerSecond(0))
        )

    def shape(self, device: str, to_instance: bool, shaper: Shaper) -> None:
        """One owner per device: of two limits on one direction of a device, the lower cap
        is the one applied."""
        side = "to_instance" if to_instance else "from_instance"
        self._keep_lower(device, side, shaper)

    def mark(self, device: str, dscp: int) -> None:
        self.devices.setdefault(device, DeviceParts()).dscp = dscp

    def limit_packets(self, device: str, to_instance: bool, limit: PacketLimit) -> None:
        """As for `shape`: of two packet limits on one direction, the lower is applied."""
        side = "packets_to_instance" if to_instance else "packets_from_instance"
        self._keep_lower(device, side, limit)

    def _keep_lower(self, device: str, side: str, new: Shaper | PacketLimit) -> None:
        """Put `new` on `side` of `device` unless what is there caps lower."""
        parts = self.devices.setdefault(device, DeviceParts())
        current = getattr(parts, side)
        if current is None or _cap_of(new) < _cap_of(current):
            setattr(parts, side, new)


def _cap_of(limit: Shaper | PacketLimit) -> int:
    """bit/s for a shaper's ceil, packet/s for a packet limit: compared within one side."""
    return limit.ceil_bits_per_s if isinstance(limit, Shaper) else limit.rate_packets_per_s


class Backend(Protocol):
    name: str

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        """Own `claim` (and record its desired state when applied), or None."""
