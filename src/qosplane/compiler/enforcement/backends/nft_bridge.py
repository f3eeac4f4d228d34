"""nftables on a Linux bridge or netns host: a bridge forward chain per tap that marks DSCP
on what the instance sends and drops what exceeds a packet rate limit either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qosplane.compiler.enforcement.base import FROM_GUEST, TO_GUEST, Claim, Decision, Desired
from qosplane.model.host_state import Capabilities, Mechanism, PacketLimit
from qosplane.model.plan import DscpMark, PacketRate
from qosplane.model.units import Packets, PacketsPerSecond

# A Neutron rule without max_burst_kpps leaves the burst to the backend. nftables' own
# default (nft(8), LIMIT STATEMENT: 5 packets) holds a sender that sends in clumps well
# under the rate (measured: 2245 packet/s through a 3000 limit at 6000 offered), so
# qosplane gives it a tenth of a second of packets, at least nft's 5.
NFT_MIN_BURST_PACKETS = Packets(5)
DEFAULT_BURST_S_NUM, DEFAULT_BURST_S_DEN = 1, 10  # 0.1 s of the rate


# The kernel keeps a limit's burst in 32 bits: nft takes a larger one and stores it cut
# (measured: 2^32 came back as no burst at all), so it is refused here instead.
NFT_BURST_PACKETS_MAX = Packets((1 << 32) - 1)
# The match that picks a device's traffic in its chain, by direction: what the bridge
# forwards from the tap comes from the instance; what it forwards to the tap goes to it.
NFT_DEVICE_MATCH = {False: "iifname", True: "oifname"}  # to the instance? -> meta key


def default_burst_packets(rate_packets_per_s: PacketsPerSecond) -> Packets:
    burst = rate_packets_per_s * DEFAULT_BURST_S_NUM // DEFAULT_BURST_S_DEN
    return Packets(max(NFT_MIN_BURST_PACKETS, burst))


class NftDscp:
    name = "nft-dscp"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "dscp" or claim.direction != FROM_GUEST:
            return None
        if not caps.nft_bridge:
            return Decision.refused("nftables bridge filtering is not available")
        assert isinstance(claim.limit, DscpMark)
        desired.mark(claim.device, claim.limit.dscp)
        return Decision.applied(Mechanism.MARK_NFT.value)


class NftPacketRate:
    """Neutron's packet_rate_limit on a tap: `limit rate over N/second drop` in its chain.
    Neutron's Linux bridge agent has no packet rate rule at all; its OVS agent uses a
    pktps meter (on an OVS host here too, once the switch backend takes it)."""

    name = "nft-packet-rate"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "packet_rate" or caps.ovs_switch:
            return None
        if not caps.nft_bridge:
            return Decision.refused("nftables bridge filtering is not available")
        assert isinstance(claim.limit, PacketRate)
        rate = PacketsPerSecond(claim.limit.rate_packets_per_s)
        if rate < 1:
            # nftables refuses a rate of 0, and one bad rule would fail the host's table.
            return Decision.refused("a packet rate of 0 would drop every packet")
        burst = Packets(claim.limit.burst_packets or default_burst_packets(rate))
        if burst > NFT_BURST_PACKETS_MAX:
            return Decision.refused(
                f"a burst of {burst} packets is above nftables' {NFT_BURST_PACKETS_MAX}"
            )
        limit = PacketLimit(rate, burst)
        desired.limit_packets(claim.device, claim.direction == TO_GUEST, limit)
        return Decision.applied(Mechanism.LIMIT_NFT_PACKETS.value, polices=True)


def bridge_ruleset(
    table: str,
    marks: Sequence[tuple[str, int]],
    packet_limits: Mapping[tuple[str, bool], PacketLimit] | None = None,
) -> str:
    """One nftables bridge table: per device, a chain that drops what exceeds its packet
    limits (`packet_limits`: (device, to the instance?) -> limit) and marks what it
    forwards from its instance. Loaded with `nft -f` it replaces the table atomically.

    The bridge forward hook, not netdev ingress on the tap: the tap's tc ingress redirects
    every packet to its ifb first (from-instance shaping), and a redirected packet skips
    the tap's netdev ingress hook, so a mark set there was never applied (measured)."""
    limits = packet_limits or {}
    lines = [f"table bridge {table}", f"delete table bridge {table}"]
    devices = sorted({d for d, _ in marks} | {d for d, _ in limits})
    if not devices:
        return "\n".join(lines) + "\n"
    by_device = dict(marks)
    lines.append(f"table bridge {table} {{")
    for device in devices:
        lines += [f"  chain {device} {{", "    type filter hook forward priority 0; policy accept;"]
        for to_instance, key in sorted(NFT_DEVICE_MATCH.items()):
            limit = limits.get((device, to_instance))
            if limit is not None:
                lines.append(
                    f'    {key} "{device}" limit rate over {limit.rate_packets_per_s}/second '
                    f"burst {limit.burst_packets} packets drop"
                )
        if device in by_device:
            lines.append(f'    iifname "{device}" ip dscp set {by_device[device]}')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
