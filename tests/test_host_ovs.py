"""Ports wired into Open vSwitch: the pure mapping (plan -> OVS queue, meter, DSCP flows),
the text ovs-ofctl prints, and the same reconcile scenarios against the fake switch and
the real one (root; an ovsdb-server and ovs-vswitchd of the test's own in a throwaway
namespace, userspace datapath): converge, stay quiet, repair each kind of OVS drift (a
QoS row removed, a meter deleted, flows deleted, the port deleted from the bridge),
remove what is no longer wanted."""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qosplane.agent.reconcile import HostDrivers, Reconciler, server_reports
from qosplane.compiler.enforcement.program import (
    OVS_BASE_COOKIE,
    OVS_COOKIE_TAG,
    host_program,
    ovs_base_flows,
    ovs_flow_text,
    ovs_meter,
    ovs_port_cookie,
    ovs_port_flows,
    ovs_queue,
)
from qosplane.host.errors import HostError
from qosplane.host.instances import RealInstances
from qosplane.host.ovs import FakeSwitch, RealSwitch, observed_port, parse_flows, parse_meters
from qosplane.model.host_state import (
    Capabilities,
    Mechanism,
    Meter,
    ObservedPort,
    OvsQueue,
    PacketLimit,
    PortQos,
    Shaper,
)
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import ReportStatus
from qosplane.model.units import (
    Bits,
    BitsPerSecond,
    Bytes,
    Kilobits,
    KilobitsPerSecond,
    Packets,
    PacketsPerSecond,
)
from qosplane.verify.drift import port_drift
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import drivers, server_of

OVS = Capabilities(htb=True, cgroup_v1_cpu=True, ovs_switch=True)
NEUTRON_TAP = "tap679563b6-d1"  # the seed's port with the bw-limiter (egress 3000 kbit/s)
DSCP_TAP = "tap68fe8005-c4"  # the seed's port with DSCP 26


def bridge_plan(case: str) -> dict[str, Any]:
    """A plan as an OVS-wired agent gets it: taps straight in br-int (vif_type bridge, the
    case files' own host)."""
    body = copy.deepcopy(load_case(case))
    body["host"] = {**(body.get("host") or {}), "vif_type": "bridge"}
    return plan_of(body).to_json()


# --- pure ---------------------------------------------------------------------------------


def test_neutron_rules_become_a_meter_and_a_dscp_flow() -> None:
    qos, outcomes = host_program(HostPlan.from_json(bridge_plan("vm-neutron-qos.yaml")), OVS)
    assert qos.devices == ()  # nothing for tc: OVS owns these ports
    ports = {p.port: p for p in qos.ports}
    # bw-limiter: max_kbps 3000, max_burst_kbps 0 -> Neutron's 80% default burst, as
    # the plan's effective limit carries it (in bytes), back in meter kbit.
    meter = ports[NEUTRON_TAP].from_instance
    assert meter is not None
    assert meter.rate_kilobits_per_s == 3000
    assert ports[DSCP_TAP].dscp == 26
    rules = {(o.kind, o.device): o for o in outcomes}
    police = rules[("bandwidth", NEUTRON_TAP)]
    assert (police.mechanism, police.polices) == (Mechanism.POLICE_OVS_METER.value, True)
    assert rules[("dscp", DSCP_TAP)].mechanism == Mechanism.MARK_OVS_FLOW.value


def test_the_seed_resquota_loses_its_outbound_limit_on_ovs_and_says_so() -> None:
    """The seed's wiring: Neutron's OVS agent owns the tap's ingress, so libvirt's
    outbound police does not hold (the compiler found it); the agent reports that loss
    instead of enforcing a limit the upstream stack would not."""
    qos, outcomes = host_program(HostPlan.from_json(bridge_plan("m1-resquota.yaml")), OVS)
    assert {p.to_instance for p in qos.ports} == {
        OvsQueue(BitsPerSecond(262_144_000), Bits(131_072 * 1024 * 8))
    }
    assert all(p.from_instance is None for p in qos.ports)
    lost = [o for o in outcomes if o.kind == "bandwidth" and o.direction == "egress"]
    assert lost
    for o in lost:  # with the compiler's reason: the police OVS deletes
        assert o.reason.startswith("no layer of the plan holds it: "), o.reason
        assert f"{o.device} is an Open vSwitch port: OVS deletes its ingress qdisc" in o.reason


@given(
    rate=st.integers(min_value=1000, max_value=100_000_000_000),
    burst=st.integers(min_value=1, max_value=2**31),
)
def test_meter_and_queue_units_carry_over(rate: int, burst: int) -> None:
    shaper = Shaper(BitsPerSecond(rate), BitsPerSecond(rate), Bytes(burst))
    meter = ovs_meter(shaper)
    assert meter.rate_kilobits_per_s == rate // 1000  # kbps = 1000 bit/s
    assert meter.burst_kilobits == max(burst * 8 // 1000, 1)
    queue = ovs_queue(shaper)
    assert (queue.max_rate_bits_per_s, queue.burst_bits) == (rate, burst * 8)


def test_cookies_carry_the_agents_tag_and_differ_per_port() -> None:
    a, b = ovs_port_cookie("tapaaaaaaaa-aa"), ovs_port_cookie("tapbbbbbbbb-bb")
    assert a != b
    assert a >> 48 == OVS_COOKIE_TAG == b >> 48


DUMP_FLOWS = """\
 cookie=0x90518a1e8f75ac2f, priority=100,in_port=5 actions=write_metadata:0x3/0xfff,goto_table:58
 cookie=0x9051000000000000, priority=0 actions=goto_table:58
 cookie=0x90518a1e8f75ac2f, table=58, priority=100,in_port=5 actions=meter:1048581,goto_table:59
 cookie=0x9051000000000000, table=58, priority=0 actions=goto_table:59
 cookie=0x90518a1e8f75ac2f, table=59, priority=200,ip,in_port=5 actions=meter:5,set_field:26->ip_dscp,goto_table:60
 cookie=0x90518a1e8f75ac2f, table=59, priority=190,in_port=5 actions=meter:5,goto_table:60
 cookie=0x9051000000000000, table=59, priority=0 actions=goto_table:60
 cookie=0x90518a1e8f75ac2f, table=60, priority=100,metadata=0x3/0xfff,dl_dst=02:00:0a:4e:00:05 actions=meter:2097157,NORMAL
 cookie=0x9051000000000000, table=60, priority=0 actions=NORMAL
"""
DUMP_METERS = """\
OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):
meter=1048581 pktps burst bands=
type=drop rate=2000 burst_size=200

meter=2097157 pktps burst bands=
type=drop rate=1000 burst_size=100

meter=5 kbps burst bands=
type=drop rate=3000 burst_size=2400
"""
TAPDEF_MAC = "02:00:0a:4e:00:05"
TAPDEF_VLAN = 3


def test_what_ovs_ofctl_prints_is_read_back_as_the_qos_it_renders_from() -> None:
    """Captured from ovs-ofctl 3.1 (--no-stats dump-flows; dump-meters) after the agent's
    channel wrote one port's four limits and the pipeline."""
    meters = parse_meters(DUMP_METERS)
    packets_from = PacketLimit(PacketsPerSecond(2000), Packets(200))
    packets_to = PacketLimit(PacketsPerSecond(1000), Packets(100))
    assert meters == {
        5: Meter(KilobitsPerSecond(3000), Kilobits(2400)),
        1048581: packets_from,
        2097157: packets_to,
    }
    flows = parse_flows(DUMP_FLOWS)
    assert frozenset(flows[OVS_BASE_COOKIE]) == ovs_base_flows()
    mine = flows[ovs_port_cookie("tapdef")]
    seen = observed_port("tapdef", True, None, mine, meters, 5, TAPDEF_MAC, TAPDEF_VLAN)
    want = PortQos("tapdef", None, Meter(KilobitsPerSecond(3000), Kilobits(2400)), 26)
    want = replace(want, packets_from_instance=packets_from, packets_to_instance=packets_to)
    assert seen == ObservedPort(want)
    rendered = ovs_port_flows(seen.qos, 5, TAPDEF_MAC, TAPDEF_VLAN)
    assert sorted(ovs_flow_text(f) for f in rendered) == sorted(
        line.strip() for line in DUMP_FLOWS.splitlines() if "0x90518a1e8f75ac2f" in line
    )
    # The same flows on a port now numbered 6, with another MAC or on another network:
    # not the ones it needs.
    for ofport, mac, vlan in ((6, TAPDEF_MAC, 3), (5, "02:00:0a:4e:00:06", 3), (5, TAPDEF_MAC, 4)):
        assert not observed_port("tapdef", True, None, mine, meters, ofport, mac, vlan).flows_match


def test_port_drift_names_each_aspect() -> None:
    want = PortQos(
        "tapx",
        OvsQueue(BitsPerSecond(10**7), Bits(80_000)),
        Meter(KilobitsPerSecond(3000), Kilobits(2400)),
        26,
    )
    assert port_drift("i", want, ObservedPort(want)) == []
    gone = port_drift("i", want, ObservedPort(PortQos("tapx"), exists=False))
    assert [d.aspect for d in gone] == ["device"]
    bare = port_drift("i", want, ObservedPort(PortQos("tapx")))
    assert [d.aspect for d in bare] == [
        "to-instance queue (OVS QoS linux-htb)",
        "from-instance meter (OpenFlow 1.3)",
        "dscp mark (OpenFlow)",
    ]
    odd = port_drift("i", want, ObservedPort(want, flows_match=False))
    assert [d.aspect for d in odd] == ["OpenFlow flows"]


# --- contract: the fake switch and the real one -------------------------------------------


@pytest.fixture(params=["fake", "real"])
def host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    with drivers(request.param, ovs=True) as d:
        yield d


def servers() -> list[DesiredServer]:
    return [
        server_of(bridge_plan("m1-resquota.yaml"), "server-01"),
        server_of(bridge_plan("vm-neutron-qos.yaml"), "server-02", net_prefix="10.78"),
    ]


def _ports(host: HostDrivers) -> dict[str, ObservedPort]:
    assert host.switch is not None
    return host.switch.observe()


def test_converges_onto_the_switch_then_a_second_pass_changes_nothing(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVS)
    targets, first = reconciler.converge(servers())
    assert first.errors == {}
    assert first.drift_after == []
    seen = _ports(host)
    for target in targets:
        for port in target.qos.ports:
            assert seen[port.port].qos == port
    reports = {r.id: r for r in server_reports(targets, first)}
    assert reports["server-02"].status is ReportStatus.APPLIED
    _, second = reconciler.converge(servers())
    assert (second.drift_before, second.commands, second.removed) == ([], 0, [])


def _break(host: HostDrivers, port: str, what: str) -> None:
    """Change the switch behind the agent's back, as an operator's command would."""
    switch = host.switch
    if isinstance(switch, FakeSwitch):
        now = switch.qos.get(port, PortQos(port))
        if what == "qos row":
            switch.qos[port] = PortQos(port, None, now.from_instance, now.dscp)
        elif what in ("meter", "flows"):  # deleting a meter deletes the flows using it
            switch.qos[port] = PortQos(port, now.to_instance, None, None)
        elif what == "port":
            switch.unplug(port)
        return
    assert isinstance(switch, RealSwitch)
    db, mgmt = switch.daemons.db, switch.daemons.mgmt(switch.bridge)
    ofport = subprocess.run(
        ["ovs-vsctl", f"--db={db}", "get", "interface", port, "ofport"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    commands = {
        "qos row": ["ovs-vsctl", f"--db={db}", "clear", "port", port, "qos"],
        "meter": ["ovs-ofctl", "-O", "OpenFlow13", "del-meter", mgmt, f"meter={ofport}"],
        "flows": [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "del-flows",
            mgmt,
            f"cookie={ovs_port_cookie(port):#x}/-1",
        ],
        "port": ["ovs-vsctl", f"--db={db}", "del-port", switch.bridge, port],
    }
    before = switch.observe().get(port)
    subprocess.run(commands[what], check=True, capture_output=True)
    # The agent reads OVSDB from its IDL replica, which hears of a change a moment later:
    # wait for that, as the agent's next pass would.
    wait_until(lambda: switch.observe().get(port) != before)


def wait_until(check: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "OVSDB replica never saw the change"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("what", "port", "aspects"),
    [
        ("qos row", "tapa1e966cd-47", {"to-instance queue (OVS QoS linux-htb)"}),
        ("meter", NEUTRON_TAP, {"from-instance meter (OpenFlow 1.3)"}),
        ("flows", DSCP_TAP, {"dscp mark (OpenFlow)"}),
        ("port", NEUTRON_TAP, {"device"}),
    ],
)
def test_each_kind_of_ovs_drift_is_repaired_and_named(
    host: HostDrivers, what: str, port: str, aspects: set[str]
) -> None:
    reconciler = Reconciler(host, OVS)
    targets, _ = reconciler.converge(servers())
    _break(host, port, what)
    _, result = reconciler.converge(servers())
    assert {d.aspect for d in result.drift_before if d.device == port} == aspects
    assert result.errors == {}
    assert result.drift_after == []
    want = {p.port: p for t in targets for p in t.qos.ports}
    assert _ports(host)[port].qos == want[port]


def test_a_removed_instance_leaves_no_port_row_meter_or_flow(host: HostDrivers) -> None:
    reconciler = Reconciler(host, OVS)
    reconciler.converge(servers())
    _, result = reconciler.converge(servers()[:1])
    assert result.removed == ["instance-00000043"]
    assert host.switch is not None
    owners = host.switch.owners()
    assert NEUTRON_TAP not in owners
    assert DSCP_TAP not in owners
    assert "instance-00000043" not in owners.values()
    _, _ = reconciler.converge([])
    assert host.switch.owners() == {}
    if isinstance(host.switch, RealSwitch):
        mgmt = host.switch.daemons.mgmt(host.switch.bridge)
        meters = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", mgmt],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert parse_meters(meters) == {}
        flows = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", mgmt],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # Only the bridge's own pipeline stays: no port's flow.
        assert list(parse_flows(flows)) == [OVS_BASE_COOKIE]
        rows = subprocess.run(
            ["ovs-vsctl", f"--db={host.switch.daemons.db}", "--bare", "list", "qos"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert rows.strip() == ""


def test_a_port_of_that_name_that_is_not_ours_is_refused() -> None:
    with drivers("real", ovs=True) as host:
        switch = host.switch
        assert isinstance(switch, RealSwitch)
        subprocess.run(
            ["ovs-vsctl", f"--db={switch.daemons.db}", "add-port", switch.bridge, "tapforeign-00"],
            check=True,
            capture_output=True,
        )
        wait_until(lambda: "tapforeign-00" in {r.name for r in switch._rows("Port")})
        with pytest.raises(HostError, match="not ours"):
            switch.plug("tapforeign-00", network_id="n", owner="instance-1")
        switch.apply([])  # the agent's sweep leaves it alone
        assert "tapforeign-00" not in switch.owners()
        shown = subprocess.run(
            ["ovs-vsctl", f"--db={switch.daemons.db}", "list-ports", switch.bridge],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert "tapforeign-00" in shown


def test_meters_of_other_shapes_are_listed_but_never_read_as_ours() -> None:
    text = (
        "OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):\n"
        "meter=3 pktps burst bands=\ntype=drop rate=100 burst_size=10\n"
        "meter=5 kbps burst bands=\ntype=dscp_remark rate=3000 burst_size=2400 prec_level=1\n"
        "meter=7 kbps burst bands=\ntype=drop rate=2000 burst_size=1600\n"
        "meter=9 kbps bands=\ntype=drop rate=2000\n"
        "meter=11 pktps bands=\ntype=drop rate=2000\n"
        "meter=13 pktps burst bands=\ntype=drop rate=100 burst_size=10\n"
        "type=drop rate=200 burst_size=10\n"
    )
    assert parse_meters(text) == {
        3: PacketLimit(PacketsPerSecond(100), Packets(10)),
        5: None,
        7: Meter(KilobitsPerSecond(2000), Kilobits(1600)),
        9: None,
        11: None,
        13: None,
    }


def test_a_server_that_fails_its_pass_keeps_its_ovs_qos(host: HostDrivers) -> None:
    """An agent restarted while one server cannot be wired: the other server is repaired,
    and the failing one's queue, meter and flows are left as they were, not stripped."""
    Reconciler(host, OVS).converge(servers())
    before = _ports(host)[NEUTRON_TAP].qos
    assert before.from_instance is not None
    real_ensure = host.instances.ensure

    def ensure(name: str, ports: Any) -> None:
        if name == "instance-00000043":
            raise HostError(f"plug {name}", "simulated")
        real_ensure(name, ports)

    host.instances.ensure = ensure  # type: ignore[method-assign]
    _break(host, "tapa1e966cd-47", "qos row")  # drift on the other server
    _, result = Reconciler(host, OVS).converge(servers())
    assert set(result.errors) == {"instance-00000043"}
    seen = _ports(host)
    assert seen[NEUTRON_TAP].qos == before
    assert seen["tapa1e966cd-47"].qos.to_instance is not None


def test_a_bridge_the_agent_did_not_make_is_refused() -> None:
    with drivers("real", ovs=True) as host:
        switch = host.switch
        assert isinstance(switch, RealSwitch)
        subprocess.run(
            ["ovs-vsctl", f"--db={switch.daemons.db}", "add-br", "br-neutron"],
            check=True,
            capture_output=True,
        )
        wait_until(lambda: "br-neutron" in {r.name for r in switch._rows("Bridge")})
        with pytest.raises(HostError, match="not qosplane's"):
            RealSwitch(switch.daemons, "br-neutron", "qpx-").close()


def test_a_tap_whose_device_is_gone_is_plugged_again() -> None:
    with drivers("real", ovs=True) as host:
        assert isinstance(host.instances, RealInstances)
        reconciler = Reconciler(host, OVS)
        reconciler.converge(servers())
        subprocess.run(
            ["ip", "-n", host.instances.host_netns or "", "link", "del", NEUTRON_TAP], check=True
        )
        assert host.switch is not None
        wait_until(lambda: not _ports(host)[NEUTRON_TAP].exists)
        _, result = reconciler.converge(servers())
        assert ("device", NEUTRON_TAP) in {(d.aspect, d.device) for d in result.drift_before}
        assert (result.errors, result.drift_after) == ({}, [])
        assert _ports(host)[NEUTRON_TAP].exists


# --- Neutron's packet_rate_limit: pktps meters ---------------------------------------------


def packet_rate_server() -> DesiredServer:
    """The Neutron server with packet_rate_limit rules both ways on its bw-limiter port
    (as test_host_contract's, wired into OVS)."""
    plan = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    plan["host"] = {**(plan.get("host") or {}), "vif_type": "bridge"}
    plan["ports"][0]["qos_policy"]["rules"] += [
        {"type": "packet_rate_limit", "max_kpps": 2, "max_burst_kpps": 1, "direction": "egress"},
        {"type": "packet_rate_limit", "max_kpps": 3, "direction": "ingress"},
    ]
    body = plan_of(plan).to_json()
    return server_of(body, "server-02", net_prefix="10.78")


def test_packet_rate_limits_are_pktps_meters_repaired_and_removed(host: HostDrivers) -> None:
    """kpps x 1000 packet/s, the burst in packets (0.1 s of the rate when the rule has
    none), both ways; a meter deleted behind the agent's back is named and repaired."""
    from_instance = PacketLimit(PacketsPerSecond(2000), Packets(1000))
    to_instance = PacketLimit(PacketsPerSecond(3000), Packets(300))
    reconciler = Reconciler(host, OVS)
    targets, first = reconciler.converge([packet_rate_server()])
    assert (first.errors, first.drift_after) == ({}, [])
    seen = _ports(host)[NEUTRON_TAP].qos
    assert (seen.packets_from_instance, seen.packets_to_instance) == (from_instance, to_instance)
    # The bandwidth meter beside them: Neutron's 300 kbit burst (38,400 bytes) in OVS's kbit.
    assert seen.from_instance == Meter(KilobitsPerSecond(3000), Kilobits(307))
    rules = [o for o in server_reports(targets, first)[0].rules if o.kind == "packet_rate"]
    assert {(o.direction, o.mechanism) for o in rules} == {
        ("egress", Mechanism.LIMIT_OVS_PKTPS_METER.value),
        ("ingress", Mechanism.LIMIT_OVS_PKTPS_METER.value),
    }
    switch = host.switch
    if isinstance(switch, FakeSwitch):
        switch.qos[NEUTRON_TAP] = replace(switch.qos[NEUTRON_TAP], packets_from_instance=None)
    else:
        assert isinstance(switch, RealSwitch)
        ofport = int(
            subprocess.run(
                [
                    "ovs-vsctl",
                    f"--db={switch.daemons.db}",
                    "get",
                    "interface",
                    NEUTRON_TAP,
                    "ofport",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        mgmt = switch.daemons.mgmt(switch.bridge)
        meter = f"meter={(1 << 20) | ofport}"
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-meter", mgmt, meter], check=True)
    _, repaired = reconciler.converge([packet_rate_server()])
    assert (NEUTRON_TAP, "from-instance packet meter (OpenFlow 1.3 pktps)") in {
        (d.device, d.aspect) for d in repaired.drift_before
    }
    assert repaired.drift_after == []
    assert _ports(host)[NEUTRON_TAP].qos == seen
    _, quiet = reconciler.converge([packet_rate_server()])
    assert (quiet.drift_before, quiet.commands) == ([], 0)
    reconciler.converge([])
    assert host.switch is not None
    assert host.switch.owners() == {}


def test_packet_rate_limits_through_ovs_hold_when_measured() -> None:
    """Real OVS meters (userspace datapath) in a throwaway host namespace: small UDP
    packets offered at twice each limit arrive at the limit, within 5%, both ways."""
    require_root_and("ip", "iperf3", "ss", "ethtool", "ovs-vswitchd")
    from qosplane.agent.measurement import verify_server

    server = packet_rate_server()
    with drivers("real", ovs=True) as host:
        _, result = Reconciler(host, OVS).converge([server])
        assert result.errors == {}
        verdicts = verify_server(server, OVS, host.instances, host.cgroups, host.volumes, 4)
    rates = {(v.direction, v.expected): v for v in verdicts if v.kind == "packet_rate"}
    assert set(rates) == {("egress", 2000.0), ("ingress", 3000.0)}
    for verdict in rates.values():
        assert verdict.passed, (verdict.measured, verdict.method)


def test_every_plugged_port_marks_what_it_sends_with_its_network() -> None:
    """Even without QoS of its own: a packet rate to an instance counts every sender of
    its network, and only those (table 60 matches the metadata table 0 writes)."""
    with drivers("real", ovs=True) as host:
        switch = host.switch
        assert isinstance(switch, RealSwitch)
        assert isinstance(host.instances, RealInstances)
        ns = host.instances.host_netns or ""
        for tap, net in (("tapn1", "net-one"), ("tapn2", "net-two")):
            subprocess.run(
                ["ip", "-n", ns, "link", "add", tap, "type", "veth", "peer", "name", "e" + tap],
                check=True,
            )
            subprocess.run(["ip", "-n", ns, "link", "set", tap, "up"], check=True)
            switch.plug(tap, network_id=net, owner="instance-x")
        assert switch.apply([]).failed == {}
        flows = parse_flows(
            subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows",
                 switch.daemons.mgmt(switch.bridge)],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        tags = {}
        for tap in ("tapn1", "tapn2"):
            (classify,) = flows[ovs_port_cookie(tap)]
            assert (classify.table, classify.goto_table) == (0, 58)
            tags[tap] = classify.write_metadata
        assert None not in tags.values()
        assert tags["tapn1"] != tags["tapn2"]
        assert all(p.flows_match for p in switch.observe().values())
        assert switch.apply([]).changes == 0
