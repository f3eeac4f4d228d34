"""Ports wired into OVN: the pure mapping (plan -> a port's QoS -> the Northbound rows
ML2/OVN writes, and back), and the same reconcile scenarios against the fake OVN switch
and the real one (root; an Open vSwitch and an OVN of the test's own, ovs-vswitchd and
ovn-controller in a throwaway namespace): converge, stay quiet, repair each kind of drift
(a row deleted, a row changed, the logical port deleted), keep a failed server's rows,
remove what is no longer wanted."""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.agent.reconcile import HostDrivers, Reconciler, server_reports
from qosplane.compiler.enforcement.backends.ovn import OVN_NO_PACKET_RATE
from qosplane.compiler.enforcement.program import host_program, ovn_rows, port_qos_of_rows
from qosplane.host.errors import HostError
from qosplane.host.instances import RealInstances
from qosplane.host.ovn import FakeOvnSwitch, RealOvnSwitch, nb_qos_texts
from qosplane.model.host_state import (
    Capabilities,
    Mechanism,
    Meter,
    ObservedOvnPort,
    Outcome,
    OvnPortQos,
)
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import ReportStatus
from qosplane.model.units import Kilobits, KilobitsPerSecond
from qosplane.verify.drift import ovn_port_drift, ovn_read_back
from qosplane.verify.inspect import ovn_nb_qos_rows
from tests.conftest import load_case, plan_of
from tests.hostkit import drivers, server_of
from tests.test_ovn_compiler import _one_per_type_and_direction, _rule, _with

OVN = Capabilities(htb=True, cgroup_v1_cpu=True, ovn_switch=True)
GENEVE_PORT = "0c4a9c37-5b7e-4d0c-8f5e-2d1b1b2f9e01"
GENEVE_TAP = ("tap" + GENEVE_PORT)[:14]


def ovn_plan(case: str) -> dict[str, Any]:
    """A plan as an OVN-wired agent gets it: taps in br-int, Neutron's backend OVN."""
    body = copy.deepcopy(load_case(case))
    body["host"] = {**(body.get("host") or {}), "vif_type": "bridge", "neutron_backend": "ovn"}
    return plan_of(body).to_json()


# --- pure ---------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(_rule, max_size=6), st.sampled_from(["geneve", "vxlan"]))
def test_the_agents_rows_are_the_ones_ml2_ovn_writes(
    rules: list[dict[str, Any]], net_type: str
) -> None:
    """For any policy on an overlay network, the rows the agent renders from what its
    backend took are exactly the plan's ML2/OVN rows (compiler/upstream/ovn.py)."""
    rules = _one_per_type_and_direction(rules)
    plan = plan_of(_with(rules, network_type=net_type))
    qos, outcomes = host_program(plan, OVN)
    network = "2b6f7f4e-1c1d-4a45-9d0f-6c9f3b4a5e10"  # the example's geneve network
    rendered = {r for p in qos.ovn_ports for r in ovn_rows(p, GENEVE_PORT, network)}
    assert rendered == set(plan.ovn_qos)
    assert qos.devices == ()  # no tc: OVN holds them
    assert qos.ports == ()  # nor OVS rows
    for o in outcomes:
        if o.kind == "packet_rate":
            assert o.outcome is Outcome.NOT_ENFORCEABLE
            assert "not supported in OVN" in o.reason


def test_the_mechanisms_are_named_and_police() -> None:
    plan = HostPlan.from_json(ovn_plan("vm-neutron-qos-ovn.yaml"))
    _, outcomes = host_program(plan, OVN)
    by = {(o.kind, o.device, o.direction): o for o in outcomes}
    for direction in ("ingress", "egress"):
        rule = by[("bandwidth", GENEVE_TAP, direction)]
        assert (rule.mechanism, rule.polices) == (Mechanism.POLICE_OVN_METER.value, True)
    assert by[("dscp", GENEVE_TAP, "egress")].mechanism == Mechanism.MARK_OVN.value


def test_a_flavor_quota_and_a_port_rule_become_one_row_the_lower_rate() -> None:
    body = _with([{"type": "bandwidth_limit", "max_kbps": 8000, "direction": "ingress"}])
    body["host"] = {**body["host"], "vif_type": "bridge"}
    body["flavor"]["extra_specs"] = {"quota:vif_inbound_average": "500"}  # 4 Mbit/s
    qos, _ = host_program(plan_of(body), OVN)
    (port,) = qos.ovn_ports
    assert port.to_instance == Meter(KilobitsPerSecond(4000), Kilobits(0))


def test_a_backend_asked_about_packet_rate_gives_upstreams_reason() -> None:
    """A plan compiled for another backend (packet rate held by OVS meters) on an OVN
    host: the OVN backend refuses it with ML2/OVN's reason."""
    body = copy.deepcopy(load_case("vm-neutron-qos-ovn.yaml"))
    body["host"] = {**body["host"], "neutron_backend": "openvswitch"}
    _, outcomes = host_program(plan_of(body), OVN)
    (packet,) = [o for o in outcomes if o.kind == "packet_rate"]
    assert (packet.outcome, packet.reason) == (Outcome.NOT_ENFORCEABLE, OVN_NO_PACKET_RATE)


_meter = st.builds(
    lambda rate, burst: Meter(KilobitsPerSecond(rate), Kilobits(burst)),
    st.integers(min_value=1, max_value=10_000_000),
    st.integers(min_value=0, max_value=1_000_000),
)


@given(
    st.one_of(st.none(), _meter),
    st.one_of(st.none(), _meter),
    st.one_of(st.none(), st.integers(min_value=0, max_value=63)),
)
def test_rows_read_back_are_the_qos_they_render_from(
    to: Meter | None, frm: Meter | None, dscp: int | None
) -> None:
    qos = OvnPortQos("tapx", to, frm, dscp)
    rows = ovn_rows(qos, "lsp", "net")
    assert port_qos_of_rows("tapx", rows) == qos
    assert all(r.burst_kbit != 0 for r in rows)  # no burst column rather than 0


def test_ovn_port_drift_names_each_aspect() -> None:
    want = OvnPortQos("tapx", Meter(KilobitsPerSecond(10000), Kilobits(0)), None, 26)
    assert ovn_port_drift("i", want, ObservedOvnPort(want)) == []
    gone = ovn_port_drift("i", want, ObservedOvnPort(OvnPortQos("tapx"), exists=False))
    assert [d.aspect for d in gone] == ["device"]
    bare = ovn_port_drift("i", want, ObservedOvnPort(OvnPortQos("tapx")))
    assert [d.aspect for d in bare] == [
        "to-instance OVN QoS row (to-lport bandwidth)",
        "dscp mark (OVN QoS row action)",
    ]
    odd = ovn_port_drift("i", want, ObservedOvnPort(want, rows_match=False))
    assert [d.aspect for d in odd] == ["OVN QoS rows"]


def test_the_read_back_names_the_row_and_the_meter_ovn_controller_made() -> None:
    rate = Meter(KilobitsPerSecond(3000), Kilobits(2400))
    qos = OvnPortQos("tapx", Meter(KilobitsPerSecond(10000), Kilobits(0)), rate, 26)
    rows = ovn_rows(qos, "p1", "n1")
    seen = ovn_read_back(ObservedOvnPort(qos, meters=(None, rate), rows=rows))
    assert seen == {
        ("bandwidth", "egress"): "NB QoS from-lport 2002 'inport == \"p1\"' rate=3000 "
        "burst=2400 dscp=26; ovn-controller meter kbps rate=3000 burst_size=2400",
        ("dscp", "egress"): "NB QoS from-lport 2002 'inport == \"p1\"' rate=3000 burst=2400 "
        "dscp=26",
        # A row whose meter is not (yet) on br-int says so rather than claiming it holds.
        ("bandwidth", "ingress"): "NB QoS to-lport 2002 'outport == \"p1\"' rate=10000; "
        "no ovn-controller meter with that rate on br-int",
    }
    assert ovn_read_back(ObservedOvnPort(OvnPortQos("tapx"))) == {}


# --- contract: the fake OVN switch and the real one ---------------------------------------


@pytest.fixture(params=["fake", "real"])
def host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    with drivers(request.param, ovn=True) as d:
        yield d


def servers() -> list[DesiredServer]:
    return [
        server_of(ovn_plan("vm-neutron-qos-ovn.yaml"), "server-01"),
        server_of(ovn_plan("vm-neutron-qos.yaml"), "server-02", net_prefix="10.78"),
    ]


def _ports(host: HostDrivers) -> dict[str, ObservedOvnPort]:
    assert host.ovn is not None
    return host.ovn.observe()


def test_converges_onto_ovn_then_a_second_pass_changes_nothing(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVN)
    targets, first = reconciler.converge(servers())
    assert first.errors == {}
    assert first.drift_after == []
    seen = _ports(host)
    limited = [p for t in targets for p in t.qos.ovn_ports if p != OvnPortQos(p.port)]
    assert len(limited) >= 2
    for port in (p for t in targets for p in t.qos.ovn_ports):
        assert seen[port.port].qos == port
        # ovn-controller made a meter of each row (the fake: the rows' own).
        assert seen[port.port].meters == (port.to_instance, port.from_instance)
    reports = {r.id: r for r in server_reports(targets, first)}
    assert reports["server-02"].status is ReportStatus.APPLIED
    _, second = reconciler.converge(servers())
    assert (second.drift_before, second.commands, second.removed) == ([], 0, [])


def _break(host: HostDrivers, port: str, what: str) -> None:
    """Change OVN behind the agent's back, as an operator's ovn-nbctl would."""
    switch = host.ovn
    if isinstance(switch, FakeOvnSwitch):
        now = switch.qos.get(port, OvnPortQos(port))
        if what == "row deleted":
            switch.qos[port] = OvnPortQos(port, None, now.from_instance, now.dscp)
        elif what == "row changed":
            switch.qos[port] = OvnPortQos(
                port, now.to_instance, Meter(KilobitsPerSecond(1), Kilobits(0)), now.dscp
            )
        elif what in ("logical port deleted", "tap deleted"):
            switch.unplug(port)
        return
    assert isinstance(switch, RealOvnSwitch)
    nb = ["ovn-nbctl", f"--db={switch.daemons.nb}"]

    def out(*args: str) -> str:
        return subprocess.run([*nb, *args], check=True, capture_output=True, text=True).stdout

    ls = out("--bare", "--columns=name", "find", "Logical_Switch_Port", f"name={GENEVE_PORT}")
    assert ls.strip() == GENEVE_PORT
    switch_name = next(
        name
        for name in out("--bare", "--columns=name", "list", "Logical_Switch").split()
        if GENEVE_PORT in out("lsp-list", name)
    )
    if what == "row deleted":
        out("qos-del", switch_name, "to-lport")
    elif what == "row changed":
        row = out("--bare", "--columns=_uuid", "find", "QoS", "direction=from-lport").split()
        for uuid in row:
            out("set", "QoS", uuid, "bandwidth:rate=1")
    elif what == "logical port deleted":
        out("lsp-del", GENEVE_PORT)
    elif what == "tap deleted":
        assert isinstance(host.instances, RealInstances)
        subprocess.run(
            ["ip", "-n", str(host.instances.host_netns), "link", "del", port],
            check=True,
        )
        wait_until(lambda: not switch.observe()[port].exists)
        return
    out("--wait=sb", "sync")


@pytest.mark.parametrize(
    ("what", "aspects"),
    [
        ("row deleted", {"to-instance OVN QoS row (to-lport bandwidth)"}),
        ("row changed", {"from-instance OVN QoS row (from-lport bandwidth)"}),
        ("logical port deleted", {"device"}),
        ("tap deleted", {"device"}),
    ],
)
def test_each_kind_of_ovn_drift_is_repaired_and_named(
    host: HostDrivers, what: str, aspects: set[str]
) -> None:
    reconciler = Reconciler(host, OVN)
    targets, _ = reconciler.converge(servers())
    _break(host, GENEVE_TAP, what)
    _, result = reconciler.converge(servers())
    assert {d.aspect for d in result.drift_before if d.device == GENEVE_TAP} == aspects
    assert result.errors == {}
    assert result.drift_after == []
    want = {p.port: p for t in targets for p in t.qos.ovn_ports}
    assert _ports(host)[GENEVE_TAP].qos == want[GENEVE_TAP]


def wait_until(check: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the replica never saw the change"
        time.sleep(0.01)


def test_a_row_and_a_logical_port_of_no_port_are_drift_and_go(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVN)
    targets, _ = reconciler.converge(servers())
    want = {p.port: p for t in targets for p in t.qos.ovn_ports}
    ovn = host.ovn
    if isinstance(ovn, FakeOvnSwitch):
        ovn.extra = ["neutron-n: from-lport 100 'ip4' rate=1", "logical port lsp-x"]
    else:
        assert isinstance(ovn, RealOvnSwitch)
        nb = ["ovn-nbctl", f"--db={ovn.daemons.nb}"]
        switch = sorted(ovn._switches())[0]
        owner = f'external_ids:qosplane-owner="{ovn.tag}"'
        for args in (
            ["qos-add", switch, "from-lport", "100", "ip4", "rate=1"],  # polices the switch
            # a logical port of the agent's whose OVS port went, alone on its switch
            ["ls-add", "neutron-gone"],
            ["set", "Logical_Switch", "neutron-gone", owner],
            ["lsp-add", "neutron-gone", "lsp-x"],
            ["set", "Logical_Switch_Port", "lsp-x", owner],
        ):
            subprocess.run([*nb, *args], check=True, capture_output=True)
        wait_until(
            lambda: "lsp-x" in {r.name for r in ovn.nb.tables["Logical_Switch_Port"].rows.values()}
        )
    # The first look: the row of no port goes at once; the logical port, which another
    # process may be plugging, is left until a second look agrees.
    _, first = reconciler.converge(servers())
    strays = [d.observed for d in first.drift_before if d.aspect == "OVN rows of no port"]
    assert any("'ip4' rate=1" in s for s in strays), strays
    if isinstance(ovn, RealOvnSwitch):
        assert not any("lsp-x" in s for s in strays)
        assert "lsp-x" in {r.name for r in ovn.nb.tables["Logical_Switch_Port"].rows.values()}
        _, second = reconciler.converge(servers())
        strays = [d.observed for d in second.drift_before if d.aspect == "OVN rows of no port"]
        assert strays == ["logical port lsp-x"]
        assert second.drift_after == []
        names = {r.name for r in ovn.nb.tables["Logical_Switch"].rows.values()}
        assert "neutron-gone" not in names  # its last port went, and the switch with it
    assert ovn is not None
    assert ovn.strays() == []
    seen = ovn.observe()
    assert all(seen[p].qos == q for p, q in want.items())


def test_a_vlan_ports_egress_limit_is_a_row_where_ml2_ovn_writes_an_option() -> None:
    """The agent's difference from ML2/OVN on physical networks (docs/agent.md): the
    option needs set_queue, which the userspace datapath ignores; a row holds."""
    rule = {"type": "bandwidth_limit", "max_kbps": 3000, "max_burst_kbps": 0}
    plan = plan_of(_with([rule | {"direction": "egress"}], network_type="vlan"))
    assert plan.ovn_qos == []  # ML2/OVN: qos_max_rate on the port
    assert [o.max_rate_bits_per_s for o in plan.ovn_lsp_options] == [3_000_000]
    qos, outcomes = host_program(plan, OVN)
    (port,) = qos.ovn_ports
    assert port.from_instance == Meter(KilobitsPerSecond(3000), Kilobits(0))
    (egress,) = [o for o in outcomes if o.kind == "bandwidth"]
    assert egress.mechanism == Mechanism.POLICE_OVN_METER.value


def test_a_vlan_ports_minimum_is_refused_with_ml2_ovns_reason() -> None:
    rule = {"type": "minimum_bandwidth", "min_kbps": 1000, "direction": "egress"}
    _, outcomes = host_program(plan_of(_with([rule], network_type="vlan")), OVN)
    (minimum,) = [o for o in outcomes if o.kind == "min_bandwidth"]
    assert minimum.outcome is Outcome.NOT_ENFORCEABLE
    assert minimum.reason.startswith("ML2/OVN guarantees a minimum with the port's qos_min_rate")
    assert "set_queue" in minimum.reason


def test_a_server_that_fails_its_pass_keeps_its_ovn_rows(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVN)
    targets, _ = reconciler.converge(servers())
    want = {p.port: p for t in targets for p in t.qos.ovn_ports}
    assert host.ovn is not None
    applied = host.ovn.apply([], leave={GENEVE_TAP})
    assert applied.failed == {}
    assert _ports(host)[GENEVE_TAP].qos == want[GENEVE_TAP]  # left as it was
    others = [p for p in want if p != GENEVE_TAP and want[p] != OvnPortQos(p)]
    assert others
    assert all(_ports(host)[p].qos == OvnPortQos(p) for p in others)


def test_a_removed_instance_leaves_no_port_row_or_switch(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVN)
    reconciler.converge(servers())
    _, result = reconciler.converge(servers()[1:])
    assert result.removed == ["instance-00000101"]
    assert host.ovn is not None
    assert GENEVE_TAP not in host.ovn.owners()
    reconciler.converge([])
    assert host.ovn.owners() == {}
    if isinstance(host.ovn, RealOvnSwitch):
        nb = ["ovn-nbctl", f"--db={host.ovn.daemons.nb}"]
        for table in ("QoS", "Logical_Switch_Port", "Logical_Switch"):
            rows = subprocess.run(
                [*nb, "--bare", "--columns=_uuid", "list", table],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            assert rows.strip() == "", table


def test_inspect_reads_a_real_northbound_as_the_rows_the_agent_wrote() -> None:
    with drivers("real", ovn=True) as host:
        assert isinstance(host.ovn, RealOvnSwitch)
        targets, _ = Reconciler(host, OVN).converge(servers())
        observed = host.ovn.observe()
        written = {r for t in targets for p in t.qos.ovn_ports for r in observed[p.port].rows}
        assert written
        assert set(ovn_nb_qos_rows(*nb_qos_texts(host.ovn.daemons.nb))) == written


def test_a_bridge_the_agent_did_not_make_is_refused() -> None:
    with drivers("real", ovn=True) as host:
        assert isinstance(host.ovn, RealOvnSwitch)
        daemons = host.ovn.daemons
        with pytest.raises(HostError, match="not qosplane's"):
            RealOvnSwitch(daemons, "br-int", "someone-else-")
