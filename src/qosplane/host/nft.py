"""nftables on the bridge: one bridge table with a chain per host-side device that marks
what the bridge forwards from it with its DSCP (so what an instance sends leaves with the
mark, whatever it set itself) and drops what exceeds its packet rate limits. The table is
replaced whole in one `nft -f` transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qosplane.compiler.enforcement.program import (
    NFT_DEVICE_MATCH,
    NFT_MIN_BURST_PACKETS,
    bridge_ruleset,
)
from qosplane.host.errors import HostError
from qosplane.host.process import in_netns, run
from qosplane.model.host_state import PacketLimit
from qosplane.model.units import Packets, PacketsPerSecond

# (device, to the instance?) -> its packet limit: the bridge drops what exceeds it.
PacketLimits = Mapping[tuple[str, bool], PacketLimit]

TABLE = "qosplane"


def table_for_prefix(prefix: str) -> str:
    """The bridge table of the agent whose devices carry `prefix`: one per agent, so two
    agents on one host never replace each other's chains."""
    return TABLE + "_" + (re.sub(r"[^A-Za-z0-9_]", "_", prefix).strip("_") or "default")


class DscpMarking(Protocol):
    def apply(self, marks: Mapping[str, int], packet_limits: PacketLimits | None = None) -> None:
        """Make the marks (device -> DSCP value) and packet limits exactly these."""

    def observe(self) -> dict[str, int]:
        """The marks: device -> DSCP value."""

    def observe_all(self) -> tuple[dict[str, int], dict[tuple[str, bool], PacketLimit]]:
        """The marks and the packet limits, from one look at the table."""


def _dscp_of(rule: Mapping[str, Any]) -> int | None:
    for expr in rule.get("expr", []):
        mangle = expr.get("mangle")
        if mangle and mangle.get("key", {}).get("payload", {}).get("field") == "dscp":
            value = mangle.get("value")
            return value if isinstance(value, int) else None
    return None


_TO_INSTANCE = {key: to_instance for to_instance, key in NFT_DEVICE_MATCH.items()}


def _packet_limit_of(rule: Mapping[str, Any]) -> tuple[bool, PacketLimit] | None:
    """(to the instance?, the limit) of a `iifname|oifname X limit rate over N/second burst
    B packets drop` rule."""
    to_instance = None
    for expr in rule.get("expr", []):
        match = expr.get("match")
        if match:
            key = match.get("left", {}).get("meta", {}).get("key")
            to_instance = _TO_INSTANCE.get(key, to_instance)
        limit = expr.get("limit")
        if limit and to_instance is not None and limit.get("per") == "second":
            if limit.get("inv") and "rate_unit" not in limit:  # `over`, in packets
                # nft leaves its default burst out of the JSON.
                rate, burst = limit.get("rate"), limit.get("burst", NFT_MIN_BURST_PACKETS)
                if isinstance(rate, int) and isinstance(burst, int):
                    return to_instance, PacketLimit(PacketsPerSecond(rate), Packets(burst))
    return None


class RealDscpMarking:
    def __init__(self, netns: str | None = None, table: str = TABLE) -> None:
        self.netns = netns
        self.table = table

    def apply(self, marks: Mapping[str, int], packet_limits: PacketLimits | None = None) -> None:
        run(
            in_netns(self.netns, ["nft", "-f", "-"]),
            bridge_ruleset(self.table, sorted(marks.items()), packet_limits),
        )

    def observe(self) -> dict[str, int]:
        return self.observe_all()[0]

    def observe_all(self) -> tuple[dict[str, int], dict[tuple[str, bool], PacketLimit]]:
        try:
            out = run(
                in_netns(self.netns, ["nft", "-n", "-j", "list", "table", "bridge", self.table])
            )
        except HostError as exc:
            if "No such file or directory" in exc.detail:
                return {}, {}
            raise
        items = json.loads(out).get("nftables", [])
        # Chains are named after their device (nft 1.0.6's JSON omits a chain's device).
        marks: dict[str, int] = {}
        limits: dict[tuple[str, bool], PacketLimit] = {}
        for item in items:
            rule = item.get("rule")
            if rule is None:
                continue
            device = str(rule.get("chain"))
            dscp = _dscp_of(rule)
            if dscp is not None:
                marks[device] = dscp
            found = _packet_limit_of(rule)
            if found is not None:
                limits[(device, found[0])] = found[1]
        return marks, limits

    def remove(self) -> None:
        run(in_netns(self.netns, ["nft", "-f", "-"]), bridge_ruleset(self.table, []))


@dataclass
class FakeDscpMarking:
    marks: dict[str, int] = field(default_factory=dict)
    packet_limits: dict[tuple[str, bool], PacketLimit] = field(default_factory=dict)

    def apply(self, marks: Mapping[str, int], packet_limits: PacketLimits | None = None) -> None:
        self.marks = dict(marks)
        self.packet_limits = dict(packet_limits or {})

    def observe(self) -> dict[str, int]:
        return dict(self.marks)

    def observe_all(self) -> tuple[dict[str, int], dict[tuple[str, bool], PacketLimit]]:
        return dict(self.marks), dict(self.packet_limits)
