"""A real guest as the libvirt instance driver runs it (issue 12, items 1, 2 and 4): the
plan's domain boots qosplane's guest image, its NIC a tap libvirt puts in the network's
Linux bridge (no libvirt `<bandwidth>`: this kernel lacks sfq and `tc police`, so the agent
shapes the tap), commands run inside through qemu-ga, and the flavor's 10 Mbit/s each way
is measured from inside the guest.

Needs root, libvirtd, QEMU, iproute2, nftables and the guest image's packages; CI installs
them (scripts/host-packages). One guest of 192 MiB under TCG (this machine's KVM boots no
stock kernel: the driver finds that out once per image and says so).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers, Reconciler, ports_of
from qosplane.cli.hostside import EXIT_FAILED, LIBVIRT_TOOLS, exec_in_guest
from qosplane.host import guest_image, measure
from qosplane.host.cgroups import RealCgroups, domain_group, domain_group_path
from qosplane.host.guest_agent import GuestAgent
from qosplane.host.hypervisor import RealHypervisor
from qosplane.host.instances import PortWire, RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import Verdict
from qosplane.model.units import BitsPerSecond, tcp_goodput_bits_per_s
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import HOST_TOOLS, own_libvirt, remove_everything, server_of
from tests.test_guest_image import IMAGE_TOOLS, _require_image_inputs
from tests.test_host_libvirt import LIBVIRT, resquota_plan

TEN_MBIT = BitsPerSecond(10_000_000)


# /proc/PID/cgroup of a QEMU process libvirt started on this machine (hybrid: v1
# controllers, cpuacct mounted alone and left out), and on a v2-only host.
HYBRID = """9:name=systemd:/
7:blkio:/machine/qemu-1-instance-00000041.libvirt-qemu
3:cpuset:/machine/qemu-1-instance-00000041.libvirt-qemu/emulator
2:cpuacct:/
1:cpu:/machine/qemu-1-instance-00000041.libvirt-qemu/emulator
0::/machine/qemu-1-instance-00000041.libvirt-qemu/emulator
"""
V2_ONLY = "0::/machine.slice/machine-qemu\\x2d1\\x2dinstance.scope/libvirt/vcpu0\n"


def test_a_domains_whole_group_is_found_from_its_qemu_process() -> None:
    domain = ["machine", "qemu-1-instance-00000041.libvirt-qemu"]
    assert domain_group_path(HYBRID, "cpu") == (domain, False)  # emulator/ is its child
    assert domain_group_path(HYBRID, "cpuacct") is None  # libvirt made none there
    scope = ["machine.slice", "machine-qemu\\x2d1\\x2dinstance.scope", "libvirt"]
    assert domain_group_path(V2_ONLY, "cpuacct") == (scope, True)
    assert domain_group_path(V2_ONLY, "cpu") == (scope, True)


@dataclass
class Guest:
    drivers: HostDrivers
    hypervisor: RealHypervisor
    server: DesiredServer
    wires: tuple[PortWire, ...]  # the server's ports as the host wires them
    host_ns: str
    agent: GuestAgent


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    require_root_and(*HOST_TOOLS, *LIBVIRT_TOOLS, *IMAGE_TOOLS)
    _require_image_inputs()
    tag = uuid.uuid4().hex[:6]
    host_ns, prefix = f"qpgd-host-{tag}", f"qpgd{tag}-"
    state = tmp_path_factory.mktemp("guest")
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    instances = RealInstances(prefix=prefix, host_netns=host_ns, guest_taps=True)
    cgroups = RealCgroups(root=f"qosplane-guest-{tag}")
    volumes = RealVolumes(state / "volumes")
    try:
        with own_libvirt(host_ns, prefix, guest_images=state / "image") as hypervisor:
            drivers = HostDrivers(
                instances,
                RealTrafficControl(host_ns),
                RealDscpMarking(host_ns),
                cgroups,
                volumes,
                hypervisor=hypervisor,
            )
            plan = resquota_plan(
                **{
                    "quota:vif_inbound_average": "1250",  # kB/s: 10 Mbit/s each way
                    "quota:vif_inbound_peak": "1250",
                    "quota:vif_inbound_burst": "64",
                    "quota:vif_outbound_average": "1250",
                    "quota:vif_outbound_peak": "1250",
                    "quota:vif_outbound_burst": "64",
                }
            )
            server = server_of(plan, "00000000-0000-0000-0000-0000000000a1", "10.211")
            _, result = Reconciler(drivers, LIBVIRT).converge([server])
            assert result.errors == {}, result.errors
            agent = hypervisor.agent(server.plan.instance_name)
            agent.wait_ready(120)
            yield Guest(drivers, hypervisor, server, ports_of(server), host_ns, agent)
    finally:
        remove_everything(instances, cgroups, volumes, host_ns)


def test_the_domain_boots_the_image_with_its_nic_in_the_networks_bridge(guest: Guest) -> None:
    name = guest.server.plan.instance_name
    dom = guest.hypervisor._lookup(name)
    assert dom is not None
    root = ET.fromstring(dom.XMLDesc(0))
    assert root.findtext("os/kernel", "").endswith("vmlinuz")
    nics = {n.find("target").get("dev"): n for n in root.findall("devices/interface")}  # type: ignore[union-attr]
    assert set(nics) == {p.tap for p in guest.wires}  # the seed's three ports
    for port in guest.wires:
        nic = nics[port.tap]
        assert nic.find("source").get("bridge") == port.bridge  # type: ignore[union-attr]
        assert nic.find("mac").get("address") == port.mac  # type: ignore[union-attr]
        assert nic.find("bandwidth") is None
    port = guest.wires[0]
    assert root.get("type") in ("qemu", "kvm")
    # The tap is libvirt's, in the bridge the probe is on; the agent's htb shapes it.
    link = json.loads(
        subprocess.run(
            ["ip", "-n", guest.host_ns, "-j", "link", "show", port.tap],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]
    assert link["master"] == port.bridge
    shaper = RealTrafficControl(guest.host_ns).observe(port.tap).root
    assert shaper is not None
    assert shaper.rate_bits_per_s == TEN_MBIT


def test_commands_run_inside_the_guest_on_the_ports_address(guest: Guest) -> None:
    port = guest.wires[0]
    shown = guest.agent.run(["/bin/ip", "-o", "-4", "addr", "show"])
    assert shown.exit_code == 0
    for each in guest.wires:  # every NIC configured from its port
        assert each.addresses[0] in shown.stdout.decode()
    gateway = (port.gateway or "").split("/")[0]
    assert guest.agent.run(["/bin/ping", "-c", "1", "-W", "5", gateway]).exit_code == 0
    status = guest.agent.run(["/bin/sh", "-c", "echo done; exit 3"])
    assert (status.exit_code, status.stdout) == (3, b"done\n")


def _iperf3_from_guest(guest: Guest, reverse: bool) -> float:
    """TCP between the guest and its network's probe, run by the guest's own iperf3:
    `reverse` sends from the probe into the guest. The receiver's figure."""
    port = guest.wires[0]
    probe = guest.drivers.instances.probe_namespace(port.network_id)
    server = subprocess.Popen(
        ["ip", "netns", "exec", probe, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            ready = subprocess.run(
                ["ip", "netns", "exec", probe, "ss", "-ltn", "sport = :5201"],
                capture_output=True,
                text=True,
                check=False,
            )
            if ":5201" in ready.stdout:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("iperf3 -s never listened in the probe")
        gateway = (port.gateway or "").split("/")[0]
        args = ["/usr/bin/iperf3", "-c", gateway, "-t", "6", "-O", "2", "-J"]
        done = guest.agent.run([*args, *(["-R"] if reverse else [])], 90)
        assert done.exit_code == 0, done.stderr
        return float(json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.wait(timeout=30)


@pytest.mark.parametrize("reverse", [False, True], ids=["out of the guest", "into the guest"])
def test_the_flavors_vif_limit_holds_measured_inside_the_guest(guest: Guest, reverse: bool) -> None:
    expected = tcp_goodput_bits_per_s(TEN_MBIT)
    measured = _iperf3_from_guest(guest, reverse)
    assert abs(measured - expected) <= 0.05 * expected, (measured, expected)


def test_a_quiet_pass_over_the_running_guest_changes_nothing(guest: Guest) -> None:
    _, result = Reconciler(guest.drivers, LIBVIRT).converge([guest.server])
    assert result.errors == {}
    assert result.drift_before == []


def test_the_domain_runs_under_kvm_only_where_kvm_booted_the_image(guest: Guest) -> None:
    assert guest.hypervisor.guest_images is not None
    (built,) = [p for p in guest.hypervisor.guest_images.iterdir() if not p.name.startswith(".")]
    dom = guest.hypervisor._lookup(guest.server.plan.instance_name)
    assert dom is not None
    virt = ET.fromstring(dom.XMLDesc(0)).get("type")
    if RealHypervisor.virt_type() != "kvm":
        assert virt == "qemu"  # no KVM at all: TCG, and no probe
        return
    booted = (built / "kvm-boots").read_text().strip()
    assert virt == ("kvm" if booted == "yes" else "qemu"), (virt, booted)


def test_qosplane_exec_runs_in_the_guest_with_its_output_and_status(
    guest: Guest, capfd: pytest.CaptureFixture[str]
) -> None:
    name = guest.server.plan.instance_name
    code = exec_in_guest(guest.hypervisor, name, ["sh", "-c", "uname -r; echo oops >&2; exit 4"])
    out, err = capfd.readouterr()
    assert code == 4
    assert out.strip() == guest_image._kernel()[1]  # /boot's kernel, not the host's own
    assert err == "oops\n"
    assert exec_in_guest(guest.hypervisor, "instance-nowhere", ["true"]) == EXIT_FAILED
    assert "does not run" in capfd.readouterr().err


def _verify(guest: Guest, server: DesiredServer, seconds: int) -> list[Verdict]:
    """verify with the libvirt driver on the guest's host, `seconds` per reading."""
    d = guest.drivers
    return verify_server(
        server, LIBVIRT, d.instances, d.cgroups, d.volumes, seconds, guest.hypervisor
    )


def test_verify_measures_from_inside_the_guest(guest: Guest) -> None:
    """verify with the libvirt driver: TCP both ways between the guest's own iperf3 and
    the probe, after the path's and the guest CPU's own capacity; each judged."""
    verdicts = _verify(guest, guest.server, 4)
    bandwidth = {(v.device, v.direction): v for v in verdicts if v.kind == "bandwidth"}
    taps = {w.tap for w in guest.wires}
    assert set(bandwidth) == {(t, d) for t in taps for d in ("ingress", "egress")}
    for verdict in bandwidth.values():
        assert verdict.configured == "10000000 bit/s"
        assert verdict.capacity is not None
        assert verdict.outcome == "pass", verdict.to_json()
    # Measured inside: the guest's own iperf3, not a namespace (a real guest's is empty).
    for verdict in bandwidth.values():
        assert "the guest, by its own iperf3" in verdict.method, verdict.method


def test_a_guest_stopped_behind_the_agents_back_comes_back_with_its_limits(guest: Guest) -> None:
    """`virsh destroy`: its taps go with it. The next pass starts the domain again (the
    same definition), libvirt makes the taps again, and the agent shapes them again; the
    guest boots and answers."""
    name = guest.server.plan.instance_name
    reconciler = Reconciler(guest.drivers, LIBVIRT)  # a running agent's: it has passed once
    assert reconciler.converge([guest.server])[1].errors == {}
    dom = guest.hypervisor._lookup(name)
    assert dom is not None
    dom.destroy()
    tap = guest.wires[0].tap
    tc = RealTrafficControl(guest.host_ns)
    assert tc.observe(tap).root is None  # gone with its tap
    _, result = reconciler.converge([guest.server])
    assert result.errors == {}, result.errors
    assert any(d.aspect == "libvirt domain" for d in result.drift_before), result.drift_before
    assert result.drift_after == []
    shaper = tc.observe(tap).root
    assert shaper is not None
    assert shaper.rate_bits_per_s == TEN_MBIT
    guest.agent.wait_ready(120)  # the same agent object: libvirt's channel of the new QEMU
    assert guest.agent.run(["/bin/true"]).exit_code == 0
    _, quiet = reconciler.converge([guest.server])
    assert quiet.drift_before == []


def _second_guest() -> DesiredServer:
    """Another server of the seed's flavor at the default weight (1024): its own instance
    name and one port of its own."""
    body = copy.deepcopy(load_case("m1-resquota.yaml"))
    body["instance"] = {**body["instance"], "uuid": str(uuid.uuid4()), "name": "instance-00000042"}
    body["host"] = {**body["host"], "vif_type": "hybrid"}
    body["flavor"]["extra_specs"] = {"quota:cpu_shares": "1024"}
    body["ports"] = [{"id": "c0ffee00-0000-4000-8000-000000000042", "mac": "fa:16:3e:00:00:42"}]
    return server_of(plan_of(body).to_json(), "00000000-0000-0000-0000-0000000000a2", "10.213")


def _affinities(pid: int) -> dict[int, set[int]]:
    return {
        int(t.name): os.sched_getaffinity(int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()
    }


def test_cpu_shares_512_against_1024_between_two_guests(guest: Guest) -> None:
    """Two guests on one CPU, each kept busy by a loop inside it: the CPU time of each
    domain's whole group splits as their shares, 512:1024. Then verify's own check of the
    first: its guest against a loop beside its group at the default weight."""
    second = _second_guest()
    reconciler = Reconciler(guest.drivers, LIBVIRT)
    _, result = reconciler.converge([guest.server, second])
    assert result.errors == {}, result.errors
    other = guest.hypervisor.agent(second.plan.instance_name)
    other.wait_ready(120)
    first_name = guest.server.plan.instance_name
    before = _affinities(guest.hypervisor.qemu_pid(first_name))
    busy = [a.start(["/bin/sh", "-c", measure.BUSY_LOOP]) for a in (guest.agent, other)]
    try:
        ratio, _ = measure.domains_cpu_ratio(
            guest.hypervisor.qemu_pid(first_name),
            guest.hypervisor.qemu_pid(second.plan.instance_name),
            5,
        )
    finally:
        guest.agent.kill(busy[0])
        other.kill(busy[1])
    assert abs(ratio - 0.5) <= 0.05 * 0.5, ratio
    _, removed = reconciler.converge([guest.server])
    assert removed.errors == {}
    assert second.plan.instance_name in removed.removed
    verdicts = _verify(guest, guest.server, 4)
    (cpu,) = [v for v in verdicts if v.kind == "cpu_shares"]
    assert cpu.configured == "cpu.shares=512 vs 1024"
    assert cpu.outcome == "pass", (cpu.measured, cpu.method)
    # Nothing of the measurement is left: the reference group, the threads' pinning.
    pid = guest.hypervisor.qemu_pid(first_name)
    group = domain_group(pid, "cpu")
    assert group is not None
    assert not (group[0].parent / measure.REFERENCE_GROUP).exists()
    after = _affinities(pid)
    assert {t: after[t] for t in before.keys() & after.keys()} == {
        t: before[t] for t in before.keys() & after.keys()
    }


def test_the_seeds_resquota_rate_is_measured_or_said_inconclusive(guest: Guest) -> None:
    """The seed's m1.resquota (32768 KB/s: 262 Mbit/s each way), re-tuned live onto the
    running guest and measured from inside it. A TCG guest may not carry 1.2 times that:
    then verify must say inconclusive with both numbers, never pass or fail."""
    seed = replace(guest.server, plan=HostPlan.from_json(resquota_plan()), plan_revision=2)
    reconciler = Reconciler(guest.drivers, LIBVIRT)
    try:
        assert reconciler.converge([seed])[1].errors == {}
        verdicts = _verify(guest, seed, 2)
        bandwidth = [v for v in verdicts if v.kind == "bandwidth"]
        assert bandwidth
        for verdict in bandwidth:
            assert verdict.configured == "262144000 bit/s", verdict.configured
            assert verdict.capacity is not None
            if verdict.capacity < 1.2 * verdict.expected:
                assert verdict.outcome == "inconclusive", verdict.to_json()
            else:
                assert verdict.outcome == "pass", verdict.to_json()
    finally:
        assert reconciler.converge([guest.server])[1].errors == {}
