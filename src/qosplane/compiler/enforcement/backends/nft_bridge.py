"""nftables on a Linux bridge or netns host: a bridge forward chain per tap that marks DSCP
on what the instance sends and drops what exceeds a packet rate limit either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qosplane.compiler.enforcement.base import (
    FROM_GUEST,
    TO_GUEST,
    Claim,
    Decision,
    Desired,
    packet_limit_of,
)
from qosplane.model.host_state import Capabilities, Mechanism, PacketLimit
from qosplane.model.plan import DscpMark, PacketRate
from qosplane.model.units import Packets

# nftables' own burst when a limit names none (nft(8), LIMIT STATEMENT: 5 packets).
NFT_MIN_BURST_PACKETS = Packets(5)
# The kernel keeps a limit's burst in 32 bits: nft takes a larger one and stores it cut
# (measured: 2^32 came back as no burst at all), so it is refused here instead.
NFT_BURST_PACKETS_MAX = Packets((1 << 32) - 1)
# The match that picks a device's traffic in its chain, by direction: what the bridge
# forwards from the tap comes from the instance; what it forwards to the tap goes to it.
NFT_DEVICE_MATCH = {False: "iifname", True: "oifname"}  # to the instance? -> meta key


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
    pktps meter, and so does an OVS host here (backends/ovs.py)."""

    name = "nft-packet-rate"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "packet_rate" or caps.switched:
            return None
        if not caps.nft_bridge:
            return Decision.refused("nftables bridge filtering is not available")
        assert isinstance(claim.limit, PacketRate)
        limit = packet_limit_of(claim.limit, NFT_BURST_PACKETS_MAX, "nftables'")
        if isinstance(limit, str):
            return Decision.refused(limit)
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
