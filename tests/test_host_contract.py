"""The same reconcile scenarios against the in-memory fakes and the real drivers (root,
in a throwaway namespace): converge, stay quiet, repair each kind of drift, remove what is
no longer wanted, and finish what a killed pass left half-made."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator

import pytest

from qosplane.agent.reconcile import HostDrivers, Reconciler, repaired_drift, server_reports
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import FakeInstances, RealInstances
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_state import Capabilities, CpuQos, DeviceQos, PacketLimit
from qosplane.model.plan import AttachedVolume, DesiredServer
from qosplane.model.report import ReportStatus
from qosplane.model.units import Packets, PacketsPerSecond
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import drivers, server_of
from tests.test_host_program import hybrid_plan

CAPS = Capabilities(htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True)


@pytest.fixture(params=["fake", "real"])
def host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    with drivers(request.param) as d:
        yield d


def servers() -> list[DesiredServer]:
    # Two instances: the seed's resquota (3 ports, cpu 512) and the Neutron one (bw + dscp).
    return [
        server_of(hybrid_plan("m1-resquota.yaml"), "server-01"),
        server_of(hybrid_plan("vm-neutron-qos.yaml"), "server-02", net_prefix="10.78"),
    ]


def test_converges_then_a_second_pass_changes_nothing(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    targets, first = reconciler.converge(servers())
    assert first.errors == {}
    assert first.drift_before  # a fresh host differs from the plan
    assert first.drift_after == []
    assert host.instances.names() == {"instance-00000041", "instance-00000043"}
    reports = server_reports(targets, first)
    assert [r.status for r in reports] == [
        ReportStatus.PARTIAL,
        ReportStatus.APPLIED,
    ]  # disks: no export yet
    _, second = reconciler.converge(servers())
    assert (second.drift_before, second.commands, second.removed) == ([], 0, [])


def test_each_kind_of_drift_is_repaired_and_named(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    targets, _ = reconciler.converge(servers())
    tap = "tap679563b6-d1"
    resquota_tap = targets[0].qos.devices[0].device
    host.tc.apply(
        [
            f"qdisc del dev {resquota_tap} root",
            f"class replace dev ifb{tap[3:]} parent 1: classid 1:1 htb rate 9000000bit ceil 9000000bit burst 4096b",
        ]
    )
    host.dscp.apply({})
    host.cgroups.apply(CpuQos("instance-00000041", shares=2048))
    _, result = reconciler.converge(servers())
    found = {(d.device, d.aspect) for d in result.drift_before}
    assert found == {
        (resquota_tap, "to-instance shaper (htb on the device)"),
        (f"ifb{tap[3:]}", "from-instance shaper (htb on the ifb)"),
        ("tap68fe8005-c4", "dscp mark (nftables)"),
        ("cpu", "cpu.shares"),
    }
    assert result.drift_after == []
    repaired = repaired_drift(targets, result, {"server-01": 1, "server-02": 1})
    assert {d.aspect for drift in repaired.values() for d in drift} == {a for _, a in found}
    # A server that had not converged yet was being applied, not repaired.
    assert repaired_drift(targets, result, {"server-02": 1}).keys() == {"server-02"}


def test_what_is_no_longer_wanted_is_removed(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    reconciler.converge(servers())
    _, result = reconciler.converge(servers()[:1])
    assert result.removed == ["instance-00000043"]
    assert host.instances.names() == {"instance-00000041"}
    assert host.instances.ifbs() == {d.ifb for d in reconciler_ifbs(reconciler)}
    assert host.cgroups.groups() == {"instance-00000041"}
    _, empty = reconciler.converge([])
    assert (host.instances.names(), host.instances.ifbs(), host.cgroups.groups()) == (
        set(),
        set(),
        set(),
    )
    assert empty.removed == ["instance-00000041"]


def reconciler_ifbs(reconciler: Reconciler) -> list[DeviceQos]:
    from qosplane.agent.reconcile import targets_of

    return [
        d
        for t in targets_of(servers()[:1], reconciler.caps)
        for d in t.qos.devices
        if d.from_instance is not None
    ]


def test_a_half_made_instance_is_completed(host: HostDrivers) -> None:
    """What a SIGKILL between two steps leaves: the namespace made, no port plugged yet."""
    reconciler = Reconciler(host, CAPS)
    if isinstance(host.instances, RealInstances):
        subprocess.run(
            ["ip", "netns", "add", host.instances.namespace("instance-00000043")], check=True
        )
    _, result = reconciler.converge(servers()[1:])
    assert result.errors == {}
    assert result.drift_after == []
    _, again = reconciler.converge(servers()[1:])
    assert again.commands == 0


def test_our_own_tap_left_by_a_removed_namespace_is_replaced() -> None:
    """The kernel deletes a removed namespace's veths asynchronously: an instance made again
    at once can meet its old tap, ours (our alias) with its peer gone. It is replaced, not
    refused (found by bench/guests.py: verify's scratch ends, made twice in a row)."""
    with drivers("real") as host:
        assert isinstance(host.instances, RealInstances)
        ns = str(host.instances.host_netns)
        tap = "tap679563b6-d1"
        for argv in (
            ["link", "add", tap, "type", "veth", "peer", "name", "vm0"],
            ["link", "set", tap, "alias", host.instances.tag],
        ):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        _, result = Reconciler(host, CAPS).converge(servers()[1:])
        assert result.errors == {}, result.errors
        links = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True, check=True
        ).stdout
        assert "vm0" not in links  # the old pair went
        guest = subprocess.run(
            ["ip", "-n", host.instances.namespace("instance-00000043"), "-o", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "eth679563b6-d1" in guest  # the new pair's guest end is the instance's


def test_a_device_that_is_not_ours_is_refused_not_deleted() -> None:
    """A tap of the same name whose peer is elsewhere (a Nova VM's) is left alone and the
    instance is reported failed; an ifb the agent did not make is never claimed."""
    with drivers("real") as host:
        assert isinstance(host.instances, RealInstances)
        ns = str(host.instances.host_netns)
        subprocess.run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                "tap679563b6-d1",
                "type",
                "veth",
                "peer",
                "name",
                "vm0",
            ],
            check=True,
        )
        subprocess.run(["ip", "-n", ns, "link", "add", "ifb68fe8005-c4", "type", "ifb"], check=True)
        targets, result = Reconciler(host, CAPS).converge(servers()[1:])
        assert "not qosplane's" in result.errors["instance-00000043"]
        links = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True, check=True
        ).stdout
        assert "tap679563b6-d1" in links
        assert "ifb68fe8005-c4" in links
        assert host.instances.ifbs() == set()
        assert server_reports(targets, result)[0].status is ReportStatus.FAILED


def test_a_failing_device_does_not_block_the_others(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    reconciler.converge(servers())
    # A burst tc refuses (0 bytes) on one server: its batch fails, the other converges.
    plan = hybrid_plan("vm-neutron-qos.yaml")
    for entry in plan["effective"]:  # every layer's artifact: the plan's limit is the strictest
        for artifact in entry["artifacts"] if entry["kind"] == "bandwidth" else ():
            artifact["limit"] = {**artifact["limit"], "rate_bits_per_s": 0}
    broken = [servers()[0], server_of(plan, "server-02", net_prefix="10.78")]
    host.tc.apply(["qdisc del dev tapbb8410ad-a0 root"])
    targets, result = reconciler.converge(broken)
    assert "instance-00000043" in result.errors
    assert all(d.instance == "instance-00000043" for d in result.drift_after)
    reports = {r.id: r for r in server_reports(targets, result)}
    assert reports["server-02"].status is ReportStatus.FAILED
    assert reports["server-02"].error
    assert reports["server-01"].status is ReportStatus.PARTIAL


def test_real_cgroup_values_are_written() -> None:
    with drivers("real") as host:
        assert isinstance(host.cgroups, RealCgroups)
        Reconciler(host, CAPS).converge(servers())
        shares = host.cgroups.base / "instance-00000041" / "cpu.shares"
        assert shares.read_text().strip() == "512"


def test_observation_keeps_each_devices_classes_apart() -> None:
    """One batch reads every device's classes, and class lines do not name their device:
    a device with an htb root but no class must not take the next device's class."""
    with drivers("real") as host:
        assert isinstance(host.instances, RealInstances)
        ns = str(host.instances.host_netns)
        for name in ("qpa", "qpb"):
            subprocess.run(
                ["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                check=True,
            )
        host.tc.apply(
            [
                "qdisc add dev qpa root handle 1: htb default 1",
                "qdisc add dev qpb root handle 1: htb default 1",
                "class add dev qpb parent 1: classid 1:1 htb rate 10000000bit ceil 10000000bit burst 12500b",
            ]
        )
        seen = host.tc.observe_many(["qpa", "qpb", "missing0"])
        assert (seen["qpa"].root_htb, seen["qpa"].root) == (True, None)
        assert seen["qpb"].root is not None
        assert seen["qpb"].root.rate_bits_per_s == 10_000_000
        assert not seen["missing0"].exists


VOLUME_CAPS = Capabilities(
    htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True, qemu_storage_daemon=True
)


def volume_server(volume_id: str = "vol-0001") -> DesiredServer:
    attached = [AttachedVolume(volume_id, "vdb", 1)]
    return server_of(hybrid_plan("cinder-per-gb.yaml"), "server-03", "10.79", attached)


@pytest.fixture(params=["fake", "real"])
def volume_host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    if request.param == "real":
        require_root_and("qemu-storage-daemon", "qemu-io")
    with drivers(request.param) as d:
        yield d


def test_volumes_are_exported_throttled_repaired_and_removed(volume_host: HostDrivers) -> None:
    host = volume_host
    reconciler = Reconciler(host, VOLUME_CAPS)
    _, first = reconciler.converge([volume_server()])
    assert first.errors == {}
    assert host.volumes.observe("vol-0001") == {"x-iops-read": 100}
    _, quiet = reconciler.converge([volume_server()])
    assert quiet.drift_before == []
    host.volumes.remove("vol-0001")  # the export died behind the agent's back
    _, repaired = reconciler.converge([volume_server()])
    assert [d.aspect for d in repaired.drift_before] == ["volume throttle (qemu-storage-daemon)"]
    assert repaired.drift_after == []
    assert host.volumes.observe("vol-0001") == {"x-iops-read": 100}
    reconciler.converge([])
    assert host.volumes.volume_ids() == set()


def test_volume_limits_are_retuned_live_and_outside_changes_are_seen(
    volume_host: HostDrivers,
) -> None:
    host = volume_host
    host.volumes.ensure("vol-0002", 1, {"x-iops-read": 100})
    pid = _pid_of(host, "vol-0002")
    host.volumes.ensure("vol-0002", 1, {"x-iops-read": 80, "x-bps-write": 1_000_000})
    assert host.volumes.observe("vol-0002") == {"x-iops-read": 80, "x-bps-write": 1_000_000}
    assert _pid_of(host, "vol-0002") == pid  # re-tuned in place: the export stayed up
    if isinstance(host.volumes, RealVolumes):  # someone re-tunes QEMU behind the agent
        host.volumes._qmp(
            "vol-0002",
            {
                "execute": "qom-set",
                "arguments": {"path": "tg0", "property": "limits", "value": {"iops-read": 7}},
            },
        )
    else:
        host.volumes.exports["vol-0002"]["x-iops-read"] = 7  # type: ignore[attr-defined]
    assert host.volumes.observe("vol-0002") == {"x-iops-read": 7, "x-bps-write": 1_000_000}
    host.volumes.ensure("vol-0002", 1, {})
    assert host.volumes.observe("vol-0002") == {}
    host.volumes.remove("vol-0002")
    assert host.volumes.observe("vol-0002") is None


def _pid_of(host: HostDrivers, volume_id: str) -> int | None:
    if isinstance(host.volumes, RealVolumes):
        return host.volumes._pid(volume_id)
    return None


def test_an_ifb_set_down_is_drift_and_set_up_again(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    reconciler.converge(servers())
    ifb = "ifb679563b6-d1"
    if isinstance(host.instances, RealInstances):
        subprocess.run(
            ["ip", "-n", str(host.instances.host_netns), "link", "set", ifb, "down"], check=True
        )
    else:
        host.instances.set_ifb_down(ifb)  # type: ignore[attr-defined]
    _, result = reconciler.converge(servers())
    assert [(d.device, d.aspect) for d in result.drift_before] == [(ifb, "ifb device state")]
    assert result.drift_after == []
    assert ifb in host.instances.ifbs_up()


def test_a_deleted_servers_dscp_chain_goes_on_the_next_pass(host: HostDrivers) -> None:
    reconciler = Reconciler(host, CAPS)
    reconciler.converge(servers())
    assert host.dscp.observe() == {"tap68fe8005-c4": 26}  # the Neutron server's mark
    _, result = reconciler.converge(servers()[:1])  # that server was deleted
    assert host.dscp.observe() == {}
    assert ("tap68fe8005-c4", "dscp mark") in {(d.device, d.aspect) for d in result.drift_before}
    assert result.drift_after == []


def test_two_agents_keep_to_their_own_nftables_table() -> None:
    """Agents with different prefixes on one host: each its own table (issue 11 saw two
    agents flip each other's chains in one shared table)."""
    require_root_and("ip", "nft")
    from qosplane.host.nft import RealDscpMarking, table_for_prefix

    assert table_for_prefix("qp-") == "qosplane_qp"
    assert table_for_prefix("qpf1a2b3c-") == "qosplane_qpf1a2b3c"
    ns = "qptest-nft-two"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    first = RealDscpMarking(ns, table_for_prefix("qpa-"))
    second = RealDscpMarking(ns, table_for_prefix("qpb-"))
    try:
        first.apply({"tapaaaaaaaa-aa": 26})
        second.apply({"tapbbbbbbbb-bb": 10})
        assert first.observe() == {"tapaaaaaaaa-aa": 26}
        assert second.observe() == {"tapbbbbbbbb-bb": 10}
        first.apply({})
        assert first.observe() == {}
        assert second.observe() == {"tapbbbbbbbb-bb": 10}
    finally:
        first.remove()
        second.remove()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_a_tap_taken_out_of_its_bridge_or_set_down_is_plugged_in_again(
    host: HostDrivers,
) -> None:
    """Issue 11: `ip link set TAP nomaster` or `down` cut the instance off for good, while
    every limit still read right."""
    reconciler = Reconciler(host, CAPS)
    targets, _ = reconciler.converge(servers())
    tap = targets[1].ports[0].tap
    assert isinstance(host.instances, RealInstances | FakeInstances)
    for how in ("nomaster", "down"):
        if isinstance(host.instances, RealInstances):
            ns = host.instances.host_netns
            assert ns is not None
            subprocess.run(["ip", "-n", ns, "link", "set", tap, how], check=True)
        else:
            host.instances.unplug_behind_the_agents_back(tap)
        assert host.instances.miswired(targets[1].ports) == {tap}
        _, result = reconciler.converge(servers())
        assert (tap, "device") in {(d.device, d.aspect) for d in result.drift_before}
        assert result.drift_after == []
        assert host.instances.miswired(targets[1].ports) == set()


def packet_rate_server() -> DesiredServer:
    """The Neutron server with packet_rate_limit rules both ways on its bw-limiter port."""
    body = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    body["host"] = {**(body.get("host") or {}), "vif_type": "hybrid"}
    body["ports"][0]["qos_policy"]["rules"] += [
        {"type": "packet_rate_limit", "max_kpps": 2, "max_burst_kpps": 1, "direction": "egress"},
        {"type": "packet_rate_limit", "max_kpps": 3, "direction": "ingress"},
    ]
    return server_of(plan_of(body).to_json(), "server-02", net_prefix="10.78")


def test_packet_rate_limits_are_applied_repaired_and_removed(host: HostDrivers) -> None:
    """Neutron's packet_rate_limit in the tap's nftables chain: kpps x 1000 packets/s, the
    burst in packets (0.1 s of the rate when the rule has none), both directions."""
    tap = "tap679563b6-d1"
    from_instance = PacketLimit(PacketsPerSecond(2000), Packets(1000))
    to_instance = PacketLimit(PacketsPerSecond(3000), Packets(300))
    reconciler = Reconciler(host, CAPS)
    targets, first = reconciler.converge([packet_rate_server()])
    assert first.errors == {}
    assert first.drift_after == []
    marks, limits = host.dscp.observe_all()
    assert limits == {(tap, False): from_instance, (tap, True): to_instance}
    assert marks == {"tap68fe8005-c4": 26}  # the other port's mark is kept beside them
    applied = [o for o in server_reports(targets, first)[0].rules if o.kind == "packet_rate"]
    assert {(o.direction, o.outcome.value) for o in applied} == {
        ("egress", "applied"),
        ("ingress", "applied"),
    }
    # Behind the agent's back: the table holds only the mark, no packet limit.
    host.dscp.apply({"tap68fe8005-c4": 26})
    _, repaired = reconciler.converge([packet_rate_server()])
    aspects = {(d.device, d.aspect) for d in repaired.drift_before}
    assert (tap, "from-instance packet limit (nftables)") in aspects
    assert (tap, "to-instance packet limit (nftables)") in aspects
    assert host.dscp.observe_all()[1] == {(tap, False): from_instance, (tap, True): to_instance}
    assert repaired.drift_after == []
    _, quiet = reconciler.converge([packet_rate_server()])
    assert quiet.drift_before == []
    _, gone = reconciler.converge([])  # the server was deleted
    assert host.dscp.observe_all() == ({}, {})
    assert ("", "from-instance packet limit (nftables)") in {
        (d.instance, d.aspect) for d in gone.drift_before
    }


def test_packet_rate_limits_hold_when_measured() -> None:
    """Real nftables in a throwaway host namespace: small UDP packets offered at twice each
    limit arrive at the limit, within 5%, both ways (Neutron's 2 kpps out, 3 kpps in)."""
    require_root_and("ip", "nft", "iperf3", "ss")
    from qosplane.agent.measurement import verify_server

    server = packet_rate_server()
    with drivers("real") as host:
        _, result = Reconciler(host, CAPS).converge([server])
        assert result.errors == {}
        verdicts = verify_server(server, CAPS, host.instances, host.cgroups, host.volumes, 4)
    rates = {(v.direction, v.expected): v for v in verdicts if v.kind == "packet_rate"}
    assert set(rates) == {("egress", 2000.0), ("ingress", 3000.0)}
    for verdict in rates.values():
        assert verdict.passed, (verdict.measured, verdict.method)
