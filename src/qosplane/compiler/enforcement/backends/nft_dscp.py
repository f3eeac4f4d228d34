"""nftables DSCP marking on a Linux bridge or netns host: a bridge forward chain per tap."""

from __future__ import annotations

from collections.abc import Sequence

from qosplane.compiler.enforcement.base import FROM_GUEST, Claim, Decision, Desired
from qosplane.model.host_state import Capabilities, Mechanism
from qosplane.model.plan import DscpMark


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


def dscp_ruleset(table: str, marks: Sequence[tuple[str, int]]) -> str:
    """One nftables bridge table marking what each tap forwards from its instance; loaded
    with `nft -f` it replaces the table atomically.

    The bridge forward hook, not netdev ingress on the tap: the tap's tc ingress redirects
    every packet to its ifb first (from-instance shaping), and a redirected packet skips
    the tap's netdev ingress hook, so a mark set there was never applied (measured)."""
    lines = [f"table bridge {table}", f"delete table bridge {table}"]
    if not marks:
        return "\n".join(lines) + "\n"
    lines.append(f"table bridge {table} {{")
    for device, dscp in sorted(marks):
        lines += [
            f"  chain {device} {{",
            "    type filter hook forward priority 0; policy accept;",
            f'    iifname "{device}" ip dscp set {dscp}',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
