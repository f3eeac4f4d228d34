"""docs/rules.md's table of what a qosplane agent enforces uses the words explain prints:
each row's rule is compiled for a netns host, an Open vSwitch host and an OVN host, and the cell
must start with the mechanism the compiler chose, or with "not enforced:" and the reason
it gives. A backend that changes what it does (or a doc edited by hand) fails here."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qosplane.compiler.enforcement.program import host_program
from qosplane.model.host_state import Capabilities, Outcome
from qosplane.model.units import BitsPerSecond
from tests.conftest import load_case, plan_of

DOC = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
NETNS = Capabilities(htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True)
HOSTS = {
    "netns": NETNS,
    "ovs": replace(NETNS, ovs_switch=True),
    "ovn": replace(NETNS, ovn_switch=True),
    "uplink": replace(NETNS, uplink_bits_per_s=BitsPerSecond(10_000_000)),
}
# A Neutron rule of each type with the fields it needs (neutron_lib/api/definitions).
RULES: dict[str, dict[str, Any]] = {
    "bandwidth_limit": {"max_kbps": 3000, "max_burst_kbps": 2400},
    "dscp_marking": {"dscp_mark": 26},
    "packet_rate_limit": {"max_kpps": 2, "max_burst_kpps": 1},
    "minimum_bandwidth": {"min_kbps": 1000},
    "minimum_packet_rate": {"min_kpps": 1},
}
KIND = {
    "bandwidth_limit": "bandwidth",
    "dscp_marking": "dscp",
    "packet_rate_limit": "packet_rate",
    "minimum_bandwidth": "min_bandwidth",
    "minimum_packet_rate": "min_packet_rate",
}


def _agent_rows() -> list[tuple[str, str, str, str, str]]:
    """(rule, direction, netns cell, ovs cell, ovn cell) from the agent's table."""
    text = DOC.read_text()
    start = text.index("## What a qosplane agent enforces here")
    table = text[start : text.index("### With the uplinks' capacity given")]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.fullmatch(r"(\w+) (egress|ingress|any)", cells[0]) if cells else None
        if found:
            rows.append((found.group(1), found.group(2), cells[1], cells[2], cells[3]))
    return rows


def test_the_table_has_a_row_for_every_rule_type_and_direction() -> None:
    assert {(r, d) for r, d, _, _, _ in _agent_rows()} == {
        ("bandwidth_limit", "egress"),
        ("bandwidth_limit", "ingress"),
        ("dscp_marking", "egress"),
        ("packet_rate_limit", "egress"),
        ("packet_rate_limit", "ingress"),
        ("minimum_bandwidth", "egress"),
        ("minimum_bandwidth", "ingress"),
        ("minimum_packet_rate", "any"),
    }


def _uplink_rows() -> list[tuple[str, str, str]]:
    """(rule, direction, cell) from the table of a host with its uplinks' capacity."""
    text = DOC.read_text()
    table = text[text.index("### With the uplinks' capacity given") :]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.fullmatch(r"(\w+) (egress|ingress)", cells[0]) if cells else None
        if found:
            rows.append((found.group(1), found.group(2), cells[1]))
    return rows


def test_the_uplink_table_has_both_directions_of_minimum_bandwidth() -> None:
    assert {(r, d) for r, d, _ in _uplink_rows()} == {
        ("minimum_bandwidth", "egress"),
        ("minimum_bandwidth", "ingress"),
    }


@pytest.mark.parametrize(("rule", "direction", "cell"), _uplink_rows())
def test_each_uplink_cell_says_what_the_compiler_does(rule: str, direction: str, cell: str) -> None:
    _check(rule, direction, "uplink", cell)


@pytest.mark.parametrize(("rule", "direction", "netns", "ovs", "ovn"), _agent_rows())
def test_each_cell_says_what_the_compiler_does(
    rule: str, direction: str, netns: str, ovs: str, ovn: str
) -> None:
    for host, cell in (("netns", netns), ("ovs", ovs), ("ovn", ovn)):
        _check(rule, direction, host, cell)


def _check(rule: str, direction: str, host: str, cell: str) -> None:
    """`cell` starts with the mechanism the compiler chooses for `rule` on `host`, or is
    "not enforced:" and its reason."""
    body = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    # An OVN agent registers Neutron's backend as OVN: its plans are ML2/OVN's.
    backend = {"neutron_backend": "ovn"} if host == "ovn" else {}
    body["host"] = {**(body.get("host") or {}), "vif_type": "bridge", **backend}
    port = body["ports"][0]
    port["qos_policy"] = {
        "name": "one-rule",
        "id": "one-rule",
        # A DSCP rule has no direction field: it marks what the instance sends.
        "rules": [
            {"type": rule, **RULES[rule]}
            | ({} if rule == "dscp_marking" else {"direction": direction})
        ],
    }
    body["ports"] = [port]
    _, outcomes = host_program(plan_of(body), HOSTS[host])
    (outcome,) = [o for o in outcomes if o.kind == KIND[rule]]
    said = cell.replace("`", "")
    if outcome.outcome is Outcome.APPLIED:
        assert said.startswith(outcome.mechanism), (host, outcome.mechanism)
        assert ("polices" in said) == outcome.polices, (host, "shapes or polices")
    else:
        assert said == f"not enforced: {outcome.reason}", (host, outcome.reason)
