"""The agent end to end with ports in Open vSwitch (--switch ovs), as root: a `qosplane
serve` started here, an agent confined to a throwaway host namespace running its own
ovsdb-server and ovs-vswitchd (userspace datapath), the same server as
test_agent_functional (10 Mbit/s VIF flavor, the seed's bw-limiter on its port, DSCP 26)
measured with real traffic through OVS; an OVS row, a meter and a port deleted behind the
agent's back repaired and reported; an agent killed with SIGKILL restarted converges.

Needs root, iproute2, Open vSwitch, ethtool, iperf3, tcpdump and ping; CI installs them
(scripts/host-packages), elsewhere the module skips saying which is missing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers
from qosplane.client.http import QosplaneClient
from qosplane.compiler.enforcement.program import OVS_BASE_COOKIE
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.ovs import OvsDaemons, RealSwitch, parse_flows, parse_meters
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import Capabilities, Meter
from qosplane.model.instance import VifType
from qosplane.model.units import Kilobits, KilobitsPerSecond
from tests.conftest import require_root_and
from tests.hostkit import OVS_TOOLS, remove_everything
from tests.serving import QOSPLANE, serve_with_agent, wait_for
from tests.test_agent_functional import _make_server, _status

TOOLS = ("ip", "tc", "nft", "iperf3", "tcpdump", "ping", *OVS_TOOLS)
# Neutron's own advice for a TCP-friendly policer: a burst of 80% of the rate per second
# (neutron QoS docs, "max_burst_kbps"); 300 kbit at 3 Mbit/s starves TCP behind a meter.
EGRESS_BURST_KBIT = 2400


@dataclass
class OvsRig:
    client: QosplaneClient
    env: dict[str, str]
    host: str
    host_ns: str
    prefix: str
    state: Path
    drivers: HostDrivers
    switch: RealSwitch
    caps: Capabilities
    server: dict[str, Any]

    def ofctl(self, *args: str) -> str:
        mgmt = self.switch.daemons.mgmt(self.switch.bridge)
        return subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", args[0], mgmt, *args[1:]],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def vsctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovs-vsctl", f"--db={self.switch.daemons.db}", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OvsRig]:
    require_root_and(*TOOLS)
    tag = uuid.uuid4().hex[:6]
    state = tmp_path_factory.mktemp("state")
    host_ns = f"qpo-host-{tag}"
    prefix = f"qpo{tag}-"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    # Where `qosplane agent --switch ovs --state-dir STATE` keeps its own OVS, so the
    # restarted agent process of the SIGKILL test finds the same daemons.
    daemons = OvsDaemons(state / "ovs" / prefix.rstrip("-"), host_ns)
    instances: RealInstances | None = None
    cgroups = RealCgroups(root=f"qosplane-otest-{tag}")
    volumes = RealVolumes(state / "volumes")
    try:
        daemons.ensure()
        switch = RealSwitch(daemons, "br-int", prefix)
        instances = RealInstances(prefix=prefix, host_netns=host_ns, switch=switch)
        drivers = HostDrivers(
            instances,
            RealTrafficControl(host_ns),
            RealDscpMarking(host_ns),
            cgroups,
            volumes,
            switch,
        )
        caps = replace(probe(), ovs_switch=True)
        with serve_with_agent(
            state, f"qpo-{tag}", drivers, caps, HostFacts(vif_type=VifType.BRIDGE)
        ) as hosted:
            server = _make_server(hosted.client, hosted.host, EGRESS_BURST_KBIT)
            yield OvsRig(
                hosted.client,
                hosted.env,
                hosted.host,
                host_ns,
                prefix,
                state,
                drivers,
                switch,
                caps,
                server,
            )
        switch.remove_everything()
        switch.close()
    finally:
        if instances is not None:
            remove_everything(instances, cgroups, volumes, host_ns)
        else:
            subprocess.run(["ip", "netns", "del", host_ns], check=False)
        daemons.stop()
        shutil.rmtree(daemons.state_dir, ignore_errors=True)


def _rules(rig: OvsRig) -> dict[tuple[str, str], dict[str, Any]]:
    report = _status(rig.client, rig.server["id"])["report"]
    return {(r["kind"], r["direction"]): r for r in report["rules"]}


def test_the_agent_wires_the_port_into_ovs_and_reports_each_mechanism(rig: OvsRig) -> None:
    status = _status(rig.client, rig.server["id"])
    assert status["server"]["status"] == "ACTIVE"
    assert status["report"]["status"] == "applied", status["report"]
    rules = _rules(rig)
    assert rules[("bandwidth", "ingress")]["mechanism"] == "OVS QoS linux-htb, queue 0 on the port"
    egress = rules[("bandwidth", "egress")]
    assert (egress["mechanism"], egress["polices"]) == ("OpenFlow 1.3 meter, drop band", True)
    assert rules[("dscp", "egress")]["mechanism"].startswith("OpenFlow flow")
    tap = rig.server["ports"][0]["tap"]
    assert tap in rig.vsctl("list-ports", "br-int").split()
    # OVS made the htb itself, from the QoS row (class 1:1 ceil = max-rate).
    classes = subprocess.run(
        ["tc", "-n", rig.host_ns, "class", "show", "dev", tap],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "ceil 10Mbit" in classes
    ofport = int(rig.vsctl("get", "interface", tap, "ofport"))
    assert parse_meters(rig.ofctl("dump-meters"))[ofport] == Meter(
        KilobitsPerSecond(3000), Kilobits(EGRESS_BURST_KBIT * 1024 // 1000)
    )  # Neutron's burst is OVS policing kbit (x 1024 bits); meters count 1000-bit kbit


def test_limits_hold_through_ovs_when_measured(rig: OvsRig) -> None:
    verdicts = verify_server(
        rig.client.server_plan(rig.server["id"]).desired,
        rig.caps,
        rig.drivers.instances,
        rig.drivers.cgroups,
        rig.drivers.volumes,
        5,
    )
    by_kind = {(v.kind, v.direction): v for v in verdicts}
    assert {("bandwidth", "ingress"), ("bandwidth", "egress"), ("dscp", "egress")} <= set(by_kind)
    ingress, egress = by_kind[("bandwidth", "ingress")], by_kind[("bandwidth", "egress")]
    assert ingress.passed, ingress.to_json()  # the flavor's 10 Mbit/s, linux-htb
    assert egress.configured == "3000000 bit/s"  # the bw-limiter's, an OpenFlow meter
    assert egress.passed, egress.to_json()
    assert by_kind[("dscp", "egress")].measured == 0x68  # set_field:26->ip_dscp
    rig.client.record_measurement(rig.server["id"], verdicts)


def test_ovs_drift_is_repaired_within_five_seconds_and_reported(rig: OvsRig) -> None:
    tap = rig.server["ports"][0]["tap"]
    ofport = rig.vsctl("get", "interface", tap, "ofport")
    rig.vsctl("clear", "port", tap, "qos")  # the QoS row goes with its last reference
    rig.ofctl("del-meter", f"meter={ofport}")  # and OVS deletes the flows using it
    took = wait_for(
        lambda: (
            rig.vsctl("get", "port", tap, "qos") not in ("[]", "")
            and int(ofport) in parse_meters(rig.ofctl("dump-meters"))
            and "set_field:26->ip_dscp" in rig.ofctl("dump-flows")
        ),
        5,
        "the agent restores the QoS row, the meter and the flows",
    )
    assert took < 5
    wait_for(
        lambda: (
            {
                d["aspect"]
                for d in (
                    _status(rig.client, rig.server["id"])["report"].get("last_drift") or {}
                ).get("drift", [])
            }
            >= {"to-instance queue (OVS QoS linux-htb)", "from-instance meter (OpenFlow 1.3)"}
        ),
        5,
        "the repair is reported as drift, per aspect",
    )
    rig.vsctl("del-port", "br-int", tap)
    wait_for(
        lambda: (
            tap in rig.vsctl("list-ports", "br-int").split()
            and "set_field:26->ip_dscp" in rig.ofctl("dump-flows")
        ),
        5,
        "a port deleted from the bridge is plugged again with its flows",
    )


def test_a_killed_ovs_agent_restarted_converges(rig: OvsRig) -> None:
    """A second agent process (same host, same OVS) is killed with SIGKILL while applying a
    changed bw-limiter; restarted, the meter has the new rate; deleting the server leaves
    no port, row, meter or flow of it."""
    args = [
        str(QOSPLANE),
        "agent",
        "--host",
        rig.host,
        "--switch",
        "ovs",
        "--state-dir",
        str(rig.state),
        "--prefix",
        rig.prefix,
        "--host-netns",
        rig.host_ns,
        "--cgroup-root",
        rig.drivers.cgroups.root if isinstance(rig.drivers.cgroups, RealCgroups) else "",
        "--drift-check-s",
        "0.5",
    ]
    agent = subprocess.Popen(args, env=rig.env, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    port = rig.client.get(f"/networking/v2.0/ports?device_id={rig.server['id']}")["ports"][0]
    policy = port["qos_policy_id"]
    rule = rig.client.get(f"/networking/v2.0/qos/policies/{policy}/bandwidth_limit_rules")[
        "bandwidth_limit_rules"
    ][0]
    rig.client.call(
        "PUT",
        f"/networking/v2.0/qos/policies/{policy}/bandwidth_limit_rules/{rule['id']}",
        {"bandwidth_limit_rule": {"max_kbps": 4000}},
    )
    time.sleep(0.05)
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    restarted = subprocess.Popen(args, env=rig.env, stderr=subprocess.DEVNULL)
    tap = rig.server["ports"][0]["tap"]
    try:
        wait_for(
            lambda: (
                parse_meters(rig.ofctl("dump-meters")).get(
                    int(rig.vsctl("get", "interface", tap, "ofport"))
                )
                == Meter(KilobitsPerSecond(4000), Kilobits(EGRESS_BURST_KBIT * 1024 // 1000))
            ),
            10,
            "the meter carries the new rate",
        )
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
    rig.client.call("DELETE", f"/compute/v2.1/servers/{rig.server['id']}")
    wait_for(lambda: rig.switch.owners() == {}, 10, "the server's port and probe are unplugged")
    assert parse_meters(rig.ofctl("dump-meters")) == {}
    # Only the bridge's own pipeline stays: no port's flow.
    assert list(parse_flows(rig.ofctl("dump-flows", "--no-stats"))) == [OVS_BASE_COOKIE]
    assert rig.vsctl("--bare", "--columns=_uuid", "list", "qos") == ""
