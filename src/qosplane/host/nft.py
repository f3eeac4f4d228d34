"""DSCP marking with nftables: one bridge table with a chain per host-side device that
marks what the bridge forwards from it, so what an instance sends leaves with the mark,
whatever it set itself. The table is replaced whole in one `nft -f` transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qosplane.compiler.enforcement.program import dscp_ruleset
from qosplane.host.errors import HostError
from qosplane.host.process import in_netns, run

TABLE = "qosplane"


def table_for_prefix(prefix: str) -> str:
    """The bridge table of the agent whose devices carry `prefix`: one per agent, so two
    agents on one host never replace each other's chains."""
    return TABLE + "_" + (re.sub(r"[^A-Za-z0-9_]", "_", prefix).strip("_") or "default")


class DscpMarking(Protocol):
    def apply(self, marks: Mapping[str, int]) -> None:
        """Make the marks exactly these: device -> DSCP value."""

    def observe(self) -> dict[str, int]: ...


def _dscp_of(rule: Mapping[str, Any]) -> int | None:
    for expr in rule.get("expr", []):
        mangle = expr.get("mangle")
        if mangle and mangle.get("key", {}).get("payload", {}).get("field") == "dscp":
            value = mangle.get("value")
            return value if isinstance(value, int) else None
    return None


class RealDscpMarking:
    def __init__(self, netns: str | None = None, table: str = TABLE) -> None:
        self.netns = netns
        self.table = table

    def apply(self, marks: Mapping[str, int]) -> None:
        run(
            in_netns(self.netns, ["nft", "-f", "-"]),
            dscp_ruleset(self.table, sorted(marks.items())),
        )

    def observe(self) -> dict[str, int]:
        try:
            out = run(
                in_netns(self.netns, ["nft", "-n", "-j", "list", "table", "bridge", self.table])
            )
        except HostError as exc:
            if "No such file or directory" in exc.detail:
                return {}
            raise
        items = json.loads(out).get("nftables", [])
        # Chains are named after their device (nft 1.0.6's JSON omits a chain's device).
        marks: dict[str, int] = {}
        for item in items:
            rule = item.get("rule")
            if rule is None:
                continue
            dscp = _dscp_of(rule)
            if dscp is not None:
                marks[str(rule.get("chain"))] = dscp
        return marks

    def remove(self) -> None:
        run(in_netns(self.netns, ["nft", "-f", "-"]), dscp_ruleset(self.table, []))


@dataclass
class FakeDscpMarking:
    marks: dict[str, int] = field(default_factory=dict)

    def apply(self, marks: Mapping[str, int]) -> None:
        self.marks = dict(marks)

    def observe(self) -> dict[str, int]:
        return dict(self.marks)
