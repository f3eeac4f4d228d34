"""The NB rows and LSP options ML2/OVN writes for a port's QoS policy, and what explain
says holds on an OVN host.

Upstream: neutron/plugins/ml2/drivers/ovn/mech_driver/ovsdb/extensions/qos.py
(OVNClientQosExtension._qos_rules, _ovn_qos_rule, _ovn_lsp_rule, _add_port_qos_rules).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.model.plan import HostPlan
from tests.conftest import load_case, plan_of

CASE = "vm-neutron-qos-ovn.yaml"
GENEVE_PORT = "0c4a9c37-5b7e-4d0c-8f5e-2d1b1b2f9e01"
VLAN_PORT = "7d2e5f10-3a4b-4c6d-9e8f-1a2b3c4d5e02"


def _with(rules: list[dict[str, Any]], **port: Any) -> dict[str, Any]:
    """The OVN example with one port carrying `rules` (and the port fields given)."""
    case: dict[str, Any] = copy.deepcopy(load_case(CASE))
    case["ports"] = [case["ports"][0] | port]
    case["ports"][0]["qos_policy"] = {"name": "p", "id": "pol", "rules": rules}
    return case


def test_one_row_per_direction_with_the_mark_in_the_egress_row() -> None:
    plan = plan_of(load_case(CASE)).to_json()
    rows = {r["direction"]: r for r in plan["ovn"]["qos"]}
    switch = "neutron-2b6f7f4e-1c1d-4a45-9d0f-6c9f3b4a5e10"
    assert rows["from-lport"] == {
        "switch": switch,
        "direction": "from-lport",
        "priority": 2002,
        "match": f'inport == "{GENEVE_PORT}"',
        "bandwidth": {"rate": 10000, "burst": 8000},
        "action": {"dscp": 26},
        "external_ids": {"neutron:port_id": GENEVE_PORT},
    }
    # max_burst_kbps 0 is left out of the row, not written as 0.
    assert rows["to-lport"]["bandwidth"] == {"rate": 3000}
    assert rows["to-lport"]["match"] == f'outport == "{GENEVE_PORT}"'
    assert rows["to-lport"]["action"] == {}
    # The VLAN port has no row: its egress limit lives in its LSP options.
    assert all(VLAN_PORT not in r["match"] for r in plan["ovn"]["qos"])
    assert plan["ovn"]["lsp_options"] == [
        {
            "port": VLAN_PORT,
            "options": {
                "qos_max_rate": "20000000",
                "qos_burst": "2000000",
                "qos_min_rate": "5000000",
            },
        }
    ]
    # Neutron's OVS agent is not there: no ovs-vsctl or ovs-ofctl for the policy.
    assert plan["ovs"] == []


def test_the_same_guest_on_an_ovs_host_gets_the_ovs_agents_artifacts() -> None:
    case = load_case(CASE)
    case["host"] = case["host"] | {"neutron_backend": "openvswitch"}
    plan = plan_of(case).to_json()
    assert plan["ovn"] == {"qos": [], "lsp_options": []}
    assert any(argv[0] == "ovs-vsctl" for argv in plan["ovs"])


def test_what_ovn_cannot_enforce_is_named_with_upstreams_reason() -> None:
    plan = plan_of(load_case(CASE))
    errors = {(f.key, f.code) for f in plan.errors}
    assert ("packet_rate_limit", "not_enforceable") in errors
    assert ("minimum_bandwidth.ingress", "not_enforceable") in errors
    held = {(e.port_id, e.direction, e.kind): e for e in plan.effective if e.port_id}
    packet = held[(GENEVE_PORT, "egress", "packet_rate")]
    assert packet.effective() is None
    assert "not supported in OVN" in packet.losses[0]
    bandwidth = held[(GENEVE_PORT, "ingress", "bandwidth")].effective()
    assert bandwidth is not None
    assert (bandwidth.layer, bandwidth.mechanism) == ("neutron-ovn", "police")
    assert "ls_out_qos_meter" in bandwidth.artifact
    guarantee = held[(VLAN_PORT, "egress", "min_bandwidth")].effective()
    assert guarantee is not None
    assert guarantee.mechanism == "guarantee"
    assert "set_queue" in guarantee.note


def test_minimum_bandwidth_on_an_overlay_network_is_placement_only() -> None:
    plan = plan_of(_with([{"type": "minimum_bandwidth", "min_kbps": 1000, "direction": "egress"}]))
    assert plan.ovn_qos == []
    assert plan.ovn_lsp_options == []
    assert [(w.code, w.key) for w in plan.warnings if w.key.startswith("minimum")] == [
        ("placement_only", "minimum_bandwidth.egress")
    ]


def test_a_mark_alone_makes_an_egress_row_and_a_physical_egress_limit_does_not() -> None:
    rules = [
        {"type": "dscp_marking", "dscp_mark": 46},
        {"type": "bandwidth_limit", "max_kbps": 1000, "max_burst_kbps": 100},
    ]
    plan = plan_of(_with(rules, network_type="flat"))
    (row,) = plan.ovn_qos
    assert (row.direction, row.dscp, row.rate_kbit_per_s) == ("from-lport", 46, None)
    (options,) = plan.ovn_lsp_options
    assert (options.max_rate_bits_per_s, options.burst_bits) == (1_000_000, 100_000)


def test_network_device_and_sriov_ports_are_not_ovns() -> None:
    rules = [{"type": "bandwidth_limit", "max_kbps": 1000, "max_burst_kbps": 0}]
    for owner in ("network:router_interface", "neutron:LOADBALANCERV2"):
        plan = plan_of(_with(rules, device_owner=owner))
        assert (plan.ovn_qos, plan.ovn_lsp_options, plan.ovs) == ([], [], []), owner
        # Nothing enforces it, and nothing claims to.
        assert ("qos_policy", "not_enforceable") in {(f.key, f.code) for f in plan.errors}
        layers = {c.layer for e in plan.effective for c in e.candidates}
        assert not layers & {"neutron-ovs", "neutron-ovn"}, layers
    # An SR-IOV port is the SR-IOV agent's, on OVN as on OVS.
    sriov = plan_of(_with(rules, vif_type="direct"))
    assert sriov.ovn_qos == []
    assert "sriov-agent" in {c.layer for e in sriov.effective for c in e.candidates}


def test_a_zero_rate_survives_the_json_round_trip() -> None:
    """Neutron allows max_kbps 0; the row keeps it rather than dropping it."""
    plan = plan_of(_with([{"type": "bandwidth_limit", "max_kbps": 0, "direction": "ingress"}]))
    (row,) = plan.ovn_qos
    assert row.to_json()["bandwidth"] == {"rate": 0}
    assert HostPlan.from_json(plan.to_json()).ovn_qos == plan.ovn_qos


def test_the_plan_json_round_trips_with_its_ovn_rows() -> None:
    plan = plan_of(load_case(CASE))
    again = HostPlan.from_json(plan.to_json())
    assert again.ovn_qos == plan.ovn_qos
    assert again.ovn_lsp_options == plan.ovn_lsp_options


_kbps = st.integers(min_value=1, max_value=10_000_000)
_rule = st.one_of(
    st.builds(
        lambda kbps, burst, way: {
            "type": "bandwidth_limit",
            "max_kbps": kbps,
            "max_burst_kbps": burst,
            "direction": way,
        },
        _kbps,
        st.one_of(st.just(0), st.integers(min_value=1, max_value=1_000_000)),  # 0: no burst
        st.sampled_from(["egress", "ingress"]),
    ),
    st.builds(
        lambda mark: {"type": "dscp_marking", "dscp_mark": mark},
        st.sampled_from([0, 10, 26, 46]),
    ),
    st.builds(
        lambda kbps, way: {"type": "minimum_bandwidth", "min_kbps": kbps, "direction": way},
        _kbps,
        st.sampled_from(["egress", "ingress"]),
    ),
    st.builds(
        lambda kpps: {"type": "packet_rate_limit", "max_kpps": kpps, "max_burst_kpps": 0},
        st.integers(min_value=1, max_value=1000),
    ),
)


def _one_per_type_and_direction(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron refuses two rules of one type and direction in a policy, and a minimum
    above the maximum of its direction."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rules:
        seen.setdefault((r["type"], r.get("direction", "egress")), r)
    # Nor a minimum above the maximum of its direction.
    for way in ("egress", "ingress"):
        low, high = seen.get(("minimum_bandwidth", way)), seen.get(("bandwidth_limit", way))
        if low is not None and high is not None and low["min_kbps"] > high["max_kbps"]:
            del seen[("minimum_bandwidth", way)]
    return list(seen.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(_rule, max_size=6), st.sampled_from(["geneve", "vxlan", "vlan", "flat"]))
def test_rows_follow_ml2_ovn_for_any_policy(rules: list[dict[str, Any]], net_type: str) -> None:
    rules = _one_per_type_and_direction(rules)
    plan = plan_of(_with(rules, network_type=net_type))
    physical = net_type in ("vlan", "flat")
    limits = {r["direction"]: r for r in rules if r["type"] == "bandwidth_limit"}
    marks = [r["dscp_mark"] for r in rules if r["type"] == "dscp_marking"]
    rows = {r.direction: r for r in plan.ovn_qos}
    assert len(rows) == len(plan.ovn_qos)  # at most one row per direction
    egress, ingress = rows.get("from-lport"), rows.get("to-lport")
    # Ingress: a row exactly when there is an ingress limit, never a mark.
    assert (ingress is not None) == ("ingress" in limits)
    if ingress is not None:
        assert ingress.dscp is None
        assert ingress.rate_kbit_per_s == limits["ingress"]["max_kbps"]
        assert ingress.burst_kbit == (limits["ingress"]["max_burst_kbps"] or None)
    # Egress: the mark always, the limit only off physical networks.
    row_limit = "egress" in limits and not physical
    assert (egress is not None) == (row_limit or bool(marks))
    if egress is not None:
        assert egress.dscp == (marks[0] if marks else None)
        assert egress.rate_kbit_per_s == (limits["egress"]["max_kbps"] if row_limit else None)
    for row in plan.ovn_qos:
        assert row.priority == 2002
        assert row.rate_kbit_per_s is not None or row.dscp is not None
    minimum = [r for r in rules if r["type"] == "minimum_bandwidth" and r["direction"] == "egress"]
    options = plan.ovn_lsp_options[0] if plan.ovn_lsp_options else None
    assert (options is not None) == (physical and ("egress" in limits or bool(minimum)))
    if options is not None and "egress" in limits:
        assert options.max_rate_bits_per_s == limits["egress"]["max_kbps"] * 1000
    if options is not None and minimum:
        assert options.min_rate_bits_per_s == minimum[0]["min_kbps"] * 1000
