"""Minimum bandwidth on the data plane: a guaranteed port's htb class on its network's
uplink, admission against the uplink's capacity (refused or reported over-commits), the
tc lines and their reading back, the reconcile scenarios against the fake and the real tc
(converge, stay quiet, repair, remove), and, as root, a contention measurement: two
instances pushing through one shaped uplink, the guaranteed one gets its minimum."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from qosplane.agent.reconcile import Held, HostDrivers, Reconciler, server_reports
from qosplane.compiler.enforcement.backends.uplink import NO_INGRESS_GUARANTEE
from qosplane.compiler.enforcement.program import Wanted, admit, host_program, uplink_lines
from qosplane.host.instances import RealInstances
from qosplane.host.tc import parse_uplink
from qosplane.model.host_state import (
    Capabilities,
    Guarantee,
    Mechanism,
    Outcome,
    UplinkClass,
    UplinkQos,
)
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import ReportStatus
from qosplane.model.units import BitsPerSecond, tcp_goodput_bits_per_s
from qosplane.verify.drift import uplink_drift
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import drivers, server_of

LINK = BitsPerSecond(10_000_000)
CAPS = Capabilities(
    htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True, uplink_bits_per_s=LINK
)
A_PORT = "6a000000-0000-4000-8000-00000000000a"
B_PORT = "6b000000-0000-4000-8000-00000000000b"


def guaranteed_plan(port_id: str, rules: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A netns host's plan (taps in Linux bridges) for one port carrying `rules`."""
    body = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    body["host"] = {**(body.get("host") or {}), "vif_type": "hybrid"}
    body["instance"] = {**body["instance"], "name": name}
    port = {**body["ports"][0], "id": port_id}
    port["qos_policy"] = {"name": "g", "id": f"pol-{port_id[:4]}", "rules": rules}
    body["ports"] = [port]
    return plan_of(body).to_json()


def minimum(kbps: int, direction: str = "egress") -> dict[str, Any]:
    return {"type": "minimum_bandwidth", "min_kbps": kbps, "direction": direction}


# --- pure ---------------------------------------------------------------------------------


def test_a_configured_uplink_holds_the_egress_minimum_and_says_ingress_cannot() -> None:
    plan = HostPlan.from_json(
        guaranteed_plan(A_PORT, [minimum(6000), minimum(2000, "ingress")], "instance-a")
    )
    qos, outcomes = host_program(plan, CAPS)
    assert qos.guarantees == (Guarantee(("tap" + A_PORT)[:14], BitsPerSecond(6_000_000)),)
    by = {o.direction: o for o in outcomes if o.kind == "min_bandwidth"}
    assert by["egress"].outcome is Outcome.APPLIED
    assert by["egress"].mechanism == Mechanism.GUARANTEE_UPLINK_HTB.value
    assert by["egress"].polices is False  # it shapes: borrowing up to the link
    assert (by["ingress"].outcome, by["ingress"].reason) == (
        Outcome.NOT_ENFORCEABLE,
        NO_INGRESS_GUARANTEE,
    )
    # Without an uplink's capacity, or on a switch, it stays Placement's.
    for caps in (replace(CAPS, uplink_bits_per_s=BitsPerSecond(0)), replace(CAPS, ovs_switch=True)):
        qos, outcomes = host_program(plan, caps)
        assert qos.guarantees == ()
        (egress,) = [o for o in outcomes if o.kind == "min_bandwidth" and o.direction == "egress"]
        assert egress.outcome is Outcome.NOT_ENFORCEABLE
        assert "placement" in egress.reason


def _wanted(*rates_mbit: int) -> list[Wanted]:
    return [
        Wanted(f"i{n}", f"tap{n}", f"02:00:00:00:00:0{n}", BitsPerSecond(r * 1_000_000))
        for n, r in enumerate(rates_mbit)
    ]


def test_admission_refuses_what_does_not_fit_in_order() -> None:
    qos, said = admit("prb1", LINK, _wanted(6, 5, 3), refuse=True)
    assert [c.mac for c in qos.classes] == ["02:00:00:00:00:00", "02:00:00:00:00:02"]
    assert set(said) == {"tap1"}
    assert said["tap1"].startswith("refused: uplink prb1 carries 10000000 bit/s")
    assert "already guarantees 6000000 bit/s" in said["tap1"]
    assert qos.default_rate_bits_per_s == 1_000_000  # what the guarantees leave
    # The default class keeps 1% of the link: guarantees may take the other 99% only.
    full, said = admit("prb1", LINK, _wanted(9, 1), refuse=True)
    assert [c.rate_bits_per_s for c in full.classes] == [9_000_000]
    assert "9900000 of it for guarantees" in said["tap1"]
    exact, said = admit("prb1", LINK, _wanted(9), refuse=True)
    assert said == {}
    assert exact.default_rate_bits_per_s == 1_000_000


def test_admission_that_only_reports_keeps_every_guarantee() -> None:
    qos, said = admit("prb1", LINK, _wanted(6, 5), refuse=False)
    assert len(qos.classes) == 2
    assert said["tap1"].startswith("over-committed, reported not refused")


def test_classes_are_numbered_in_the_devices_order_from_0x10() -> None:
    both, _ = admit("prb1", LINK, _wanted(2, 3), refuse=True)
    assert [(c.minor, c.mac[-2:]) for c in both.classes] == [(0x10, "00"), (0x11, "01")]
    # The first going renumbers the second: the hierarchy is rebuilt whole.
    alone, _ = admit("prb1", LINK, _wanted(2, 3)[1:], refuse=True)
    assert [(c.minor, c.mac[-2:]) for c in alone.classes] == [(0x10, "01")]


def test_the_lines_read_back_as_the_qos_they_write() -> None:
    qos = UplinkQos(
        "prb1",
        LINK,
        (UplinkClass(0x10, "fa:16:3e:00:01:0a", BitsPerSecond(6_000_000)),),
    )
    lines = uplink_lines(qos, "prb1", present=True)
    assert lines[0] == "qdisc del dev prb1 root"
    assert "filter add dev prb1 parent 1: protocol all prio 1 u32 match ether src " in lines[-1]
    assert uplink_lines(None, "prb1", present=False) == []
    # What tc printed for those lines on this kernel (iproute2 6.1).
    qdiscs = "qdisc htb 1: root refcnt 2 r2q 10 default 0x2 direct_packets_stat 0\n"
    classes = (
        "class htb 1:10 parent 1:1 prio 0 rate 6Mbit ceil 10Mbit burst 1599b cburst 1600b \n"
        "class htb 1:1 root rate 10Mbit ceil 10Mbit burst 1600b cburst 1600b \n"
        "class htb 1:2 parent 1:1 prio 0 rate 4Mbit ceil 10Mbit burst 1600b cburst 1600b \n"
    )
    filters = (
        "filter protocol all pref 1 u32 chain 0 \n"
        "filter protocol all pref 1 u32 chain 0 fh 800: ht divisor 1 \n"
        "filter protocol all pref 1 u32 chain 0 fh 800::800 order 2048 key ht 800 bkt 0 "
        "*flowid 1:10 not_in_hw \n"
        "  match fa163e00/ffffffff at -8\n"
        "  match 010a0000/ffff0000 at -4\n"
    )
    held = parse_uplink("prb1", qdiscs, classes, filters)
    assert held == replace(qos, default_bits_per_s=BitsPerSecond(4_000_000))
    assert uplink_drift(["i"], qos, held) == []
    # A class whose ceil is no longer the link is not one of ours: drift.
    changed = classes.replace("rate 6Mbit ceil 10Mbit", "rate 6Mbit ceil 6Mbit")
    held = parse_uplink("prb1", qdiscs, changed, filters)
    assert held is not None
    assert held.classes == ()
    assert [d.aspect for d in uplink_drift(["i"], qos, held)] == ["uplink guarantees (htb)"]
    # A default class starved of what the guarantees leave is drift too.
    starved = classes.replace("rate 4Mbit ceil 10Mbit", "rate 1Mbit ceil 10Mbit")
    held = parse_uplink("prb1", qdiscs, starved, filters)
    assert held is not None
    assert held.default_bits_per_s == 1_000_000
    assert uplink_drift(["i"], qos, held) != []
    # A root whose unclassified traffic goes elsewhere is of another shape: 0 bit/s.
    other = parse_uplink("prb1", qdiscs.replace("default 0x2", "default 0"), classes, filters)
    assert other is not None
    assert other.capacity_bits_per_s == 0
    assert parse_uplink("prb1", "qdisc noqueue 0: root refcnt 2\n", "", "") is None


def test_rates_tc_prints_rounded_read_back_as_no_drift() -> None:
    """tc prints 8765433000 bit/s as 8765Mbit: the comparison is at what it prints."""
    require_root_and("ip", "tc")
    with drivers("real") as host:
        assert isinstance(host.instances, RealInstances)
        ns = str(host.instances.host_netns)
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "qpup0", "type", "veth", "peer", "name", "qpup1"],
            check=True,
        )
        qos = UplinkQos(
            "qpup0",
            BitsPerSecond(10_000_000_000),
            (UplinkClass(0x10, "fa:16:3e:00:01:0a", BitsPerSecond(1_234_567_000)),),
        )
        host.tc.set_uplink("qpup0", qos)
        held = host.tc.uplink("qpup0")
        assert held is not None
        assert held.default_bits_per_s == 8_765_000_000  # printed 8765Mbit
        assert uplink_drift(["i"], qos, held) == []
        host.tc.set_uplink("qpup0", None)
        assert host.tc.uplink("qpup0") is None


# --- contract: the fake tc and the real one -----------------------------------------------


@pytest.fixture(params=["fake", "real"])
def host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    with drivers(request.param) as d:
        yield d


# b's port carries a rule that leaves what it sends alone: a port of a plan with no rule
# at all has no entry for server_of to find it by.
UNLIMITED = {"type": "bandwidth_limit", "max_kbps": 1_000_000, "direction": "ingress"}


def servers(b_rules: list[dict[str, Any]] | None = None) -> list[DesiredServer]:
    """Two instances on one network: a guaranteed 6 Mbit/s, b (by default) no minimum."""
    return [
        server_of(guaranteed_plan(A_PORT, [minimum(6000)], "instance-a"), "server-0a"),
        server_of(
            guaranteed_plan(B_PORT, [UNLIMITED, *(b_rules or [])], "instance-b"), "server-0b"
        ),
    ]


def _uplink(host: HostDrivers, server: DesiredServer) -> UplinkQos | None:
    return host.tc.uplink("prb" + server.ports[0].network_id[:11])


def test_the_uplink_gets_one_class_per_guarantee_then_stays_quiet(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    wanted = servers()
    targets, first = reconciler.converge(wanted)
    assert first.errors == {}
    assert first.drift_after == []
    seen = _uplink(host, wanted[0])
    assert seen is not None
    assert seen.capacity_bits_per_s == LINK
    assert [(c.mac, c.rate_bits_per_s) for c in seen.classes] == [
        (wanted[0].ports[0].mac, 6_000_000)
    ]
    reports = {r.id: r for r in server_reports(targets, first)}
    assert reports["server-0a"].status is ReportStatus.APPLIED
    _, second = reconciler.converge(wanted)
    assert (second.drift_before, second.commands) == ([], 0)


def test_a_hierarchy_removed_behind_the_agents_back_is_rebuilt(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    wanted = servers()
    reconciler.converge(wanted)
    host.tc.set_uplink("prb" + wanted[0].ports[0].network_id[:11], None)
    _, result = reconciler.converge(wanted)
    assert {(d.instance, d.aspect) for d in result.drift_before} == {
        ("instance-a", "uplink guarantees (htb)")
    }
    assert result.drift_after == []
    assert _uplink(host, wanted[0]) is not None


def test_an_overcommit_is_refused_and_the_rule_says_why(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    wanted = servers([minimum(5000)])  # 6 + 5 Mbit/s on a 10 Mbit/s link
    targets, result = reconciler.converge(wanted)
    assert result.errors == {}
    seen = _uplink(host, wanted[0])
    assert seen is not None
    assert [c.mac for c in seen.classes] == [wanted[0].ports[0].mac]
    reports = {r.id: r for r in server_reports(targets, result)}
    assert reports["server-0b"].status is ReportStatus.PARTIAL
    (rule,) = [r for r in reports["server-0b"].rules if r.kind == "min_bandwidth"]
    assert (rule.outcome, rule.mechanism) == (Outcome.NOT_ENFORCEABLE, "")
    assert rule.reason.startswith("refused: uplink prb")
    # An operator who chose to report gets both classes and the over-commit named.
    reporting = Reconciler(host, replace(CAPS, refuse_overcommit=False))
    targets, result = reporting.converge(wanted)
    seen = _uplink(host, wanted[0])
    assert seen is not None
    assert len(seen.classes) == 2
    (rule,) = [
        r
        for r in {r.id: r for r in server_reports(targets, result)}["server-0b"].rules
        if r.kind == "min_bandwidth"
    ]
    assert (rule.outcome, rule.reason[:14]) == (Outcome.APPLIED, "over-committed")


def test_a_held_back_server_keeps_its_class_and_its_share(host: HostDrivers) -> None:
    """b fails and is held back: its class stays, and c's guarantee, which fits only if
    b's share went to it, is refused."""
    reconciler = Reconciler(host, CAPS)
    a, b = servers([minimum(3000)])
    c = server_of(
        guaranteed_plan("6c000000-0000-4000-8000-00000000000c", [minimum(2000)], "instance-c"),
        "server-0c",
    )
    reconciler.converge([a, b])
    reconciler.held["instance-b"] = Held(1, "it failed", time.monotonic() + 60, 1)
    targets, result = reconciler.converge([a, b, c])
    assert "instance-b" in result.errors  # held back, not acted on
    seen = _uplink(host, a)
    assert seen is not None
    assert {cl.mac for cl in seen.classes} == {a.ports[0].mac, b.ports[0].mac}
    (rule,) = [
        r
        for r in {r.id: r for r in server_reports(targets, result)}["server-0c"].rules
        if r.kind == "min_bandwidth"
    ]
    assert rule.reason.startswith("refused: ")


def test_the_last_guarantee_gone_takes_the_hierarchy_with_it(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    wanted = servers()
    reconciler.converge(wanted)
    _, result = reconciler.converge(wanted[1:])  # a goes; b, on the network, stays
    assert result.removed == ["instance-a"]
    assert _uplink(host, wanted[0]) is None


# --- measured ------------------------------------------------------------------------------


def _iperf(ns: str, to: str, port: int, streams: int, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *("ip", "netns", "exec", ns, "iperf3", "-c", to, "-p", str(port), "-J"),
            *("-t", str(seconds), "-O", "2", "-P", str(streams)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def _received_bits_per_s(run: subprocess.Popen[str]) -> float:
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out[-500:]
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])


def test_under_contention_the_guaranteed_instance_gets_its_minimum() -> None:
    """a (6 Mbit/s guaranteed, one TCP stream) and b (none, four streams) send to the
    network's probe at once through the 10 Mbit/s uplink: a gets its minimum in TCP
    goodput, b what is left; alone, b borrows the whole link."""
    require_root_and("ip", "tc", "iperf3")
    with drivers("real") as host:
        assert isinstance(host.instances, RealInstances)
        reconciler = Reconciler(host, CAPS)
        wanted = servers()
        _, result = reconciler.converge(wanted)
        assert result.errors == {}
        probe = host.instances.probe_namespace(wanted[0].ports[0].network_id)
        gateway = wanted[0].ports[0].addresses[0].gateway
        assert gateway is not None
        to = gateway.split("/")[0]
        servers_up = [
            subprocess.Popen(
                ["ip", "netns", "exec", probe, "iperf3", "-s", "-1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
            )
            for port in (5301, 5302, 5303, 5304, 5305)
        ]
        try:
            subprocess.run(["sleep", "0.5"], check=True)
            a_ns = host.instances.namespace("instance-a")
            b_ns = host.instances.namespace("instance-b")
            a, b = _iperf(a_ns, to, 5301, 1, 8), _iperf(b_ns, to, 5302, 4, 8)
            a_bits, b_bits = _received_bits_per_s(a), _received_bits_per_s(b)
            alone = _received_bits_per_s(_iperf(b_ns, to, 5303, 1, 5))
            # The control: the same link without a's class, as if its guarantee were
            # refused. Four streams against one then take most of it (measured: 2.1 of
            # 9.6 Mbit/s for a, against 5.7 with its class).
            uplink = "prb" + wanted[0].ports[0].network_id[:11]
            host.tc.set_uplink(uplink, UplinkQos(uplink, LINK, ()))
            a, b = _iperf(a_ns, to, 5304, 1, 8), _iperf(b_ns, to, 5305, 4, 8)
            unguaranteed = _received_bits_per_s(a)
            _received_bits_per_s(b)
        finally:
            for s in servers_up:
                s.kill()
                s.wait()
        goodput = tcp_goodput_bits_per_s(BitsPerSecond(6_000_000))
        assert a_bits >= 0.95 * goodput, (a_bits, b_bits)
        assert b_bits >= 0.5 * (tcp_goodput_bits_per_s(LINK) - goodput), (a_bits, b_bits)
        assert a_bits + b_bits <= 1.05 * tcp_goodput_bits_per_s(LINK)
        assert alone >= 0.9 * tcp_goodput_bits_per_s(LINK), alone
        assert unguaranteed < 0.8 * goodput, unguaranteed
