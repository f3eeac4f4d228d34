"""The agent end to end, as root, on real namespaces, tc, nftables and cgroups: a
`qosplane serve` started here, an agent confined to a throwaway host namespace, a server
with a 10 Mbit/s VIF flavor, cpu_shares 512 and a DSCP 26 policy, measured with real
traffic; drift repaired; an agent killed with SIGKILL and restarted converges and leaves
nothing behind.

Needs root, iproute2, nftables, iperf3, tcpdump and ping; CI installs them
(scripts/host-packages), elsewhere the module skips saying which is missing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers
from qosplane.cli.hostside import EXIT_INCONCLUSIVE, verify_exit
from qosplane.client.http import QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_facts import HostFacts
from qosplane.model.instance import VifType
from qosplane.model.plan import DesiredServer
from qosplane.model.report import Verdict
from tests.conftest import require_root_and
from tests.hostkit import remove_everything
from tests.serving import QOSPLANE, serve_with_agent, wait_applied, wait_for

TOOLS = (
    "ip",
    "tc",
    "nft",
    "iperf3",
    "tcpdump",
    "ping",
    "nsenter",
    "taskset",
    "qemu-storage-daemon",
    "qemu-io",
)
TEN_MBIT_KB_PER_S = "1250"  # libvirt's vif_*_average unit: kilobytes/s


@dataclass
class Rig:
    client: QosplaneClient
    env: dict[str, str]
    host: str
    host_ns: str
    prefix: str
    cgroup_root: str
    drivers: HostDrivers
    server: dict[str, Any]


def _status(client: QosplaneClient, server_id: str) -> dict[str, Any]:
    """The status as the API sends it (its JSON), which these tests read."""
    return client.server_status(server_id).to_json()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_root_and(*TOOLS)
    tag = uuid.uuid4().hex[:6]
    state = tmp_path_factory.mktemp("state")
    host_ns = f"qpf-host-{tag}"
    prefix = f"qpf{tag}-"
    cgroup_root = f"qosplane-ftest-{tag}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    drivers = HostDrivers(
        RealInstances(prefix=prefix, host_netns=host_ns),
        RealTrafficControl(host_ns),
        RealDscpMarking(host_ns),
        RealCgroups(root=cgroup_root),
        RealVolumes(state / "volumes"),
    )
    try:
        with serve_with_agent(
            state, f"qpf-{tag}", drivers, probe(), HostFacts(vif_type=VifType.HYBRID)
        ) as hosted:
            server = _make_server(hosted.client, hosted.host)
            yield Rig(
                hosted.client,
                hosted.env,
                hosted.host,
                host_ns,
                prefix,
                cgroup_root,
                drivers,
                server,
            )
    finally:
        assert isinstance(drivers.instances, RealInstances)
        assert isinstance(drivers.cgroups, RealCgroups)
        assert isinstance(drivers.volumes, RealVolumes)
        remove_everything(drivers.instances, drivers.cgroups, drivers.volumes, host_ns)


def _verify(rig: Rig, server: DesiredServer, seconds: int) -> list[Verdict]:
    """verify_server on the rig's host, as `qosplane verify` runs it there."""
    d = rig.drivers
    return verify_server(server, probe(), d.instances, d.cgroups, d.volumes, seconds)


def _network(client: QosplaneClient, name: str, cidr: str) -> str:
    """A network with one IPv4 subnet; its id."""
    net_id: str = client.call("POST", "/networking/v2.0/networks", {"network": {"name": name}})[
        "network"
    ]["id"]
    client.call(
        "POST",
        "/networking/v2.0/subnets",
        {"subnet": {"network_id": net_id, "cidr": cidr, "ip_version": 4}},
    )
    return net_id


def _make_server(client: QosplaneClient, host: str, egress_burst_kbit: int = 300) -> dict[str, Any]:
    nova = "/compute/v2.1"
    flavor = client.call(
        "POST", f"{nova}/flavors", {"flavor": {"name": "m1.vif10", "ram": 512, "vcpus": 1}}
    )["flavor"]["id"]
    client.call(
        "POST",
        f"{nova}/flavors/{flavor}/os-extra_specs",
        {
            "extra_specs": {
                "quota:vif_inbound_average": TEN_MBIT_KB_PER_S,
                "quota:vif_outbound_average": TEN_MBIT_KB_PER_S,
                "quota:cpu_shares": "512",
            }
        },
    )
    net_id = _network(client, "fnet", "10.201.0.0/24")
    policy = client.call(
        "POST", "/networking/v2.0/qos/policies", {"policy": {"name": "bw-limiter-dscp26"}}
    )
    policy_id = policy["policy"]["id"]
    client.call(
        "POST",
        f"/networking/v2.0/qos/policies/{policy_id}/dscp_marking_rules",
        {"dscp_marking_rule": {"dscp_mark": 26}},
    )
    # The seed's bw-limiter on the same port: stricter than the flavor's 10 Mbit/s egress,
    # so it owns that direction.
    client.call(
        "POST",
        f"/networking/v2.0/qos/policies/{policy_id}/bandwidth_limit_rules",
        {
            "bandwidth_limit_rule": {
                "max_kbps": 3000,
                "max_burst_kbps": egress_burst_kbit,
                "direction": "egress",
            }
        },
    )
    created = client.call(
        "POST",
        f"{nova}/servers",
        {
            "server": {
                "name": "vm-func",
                "flavorRef": flavor,
                "networks": [{"uuid": net_id}],
                "availability_zone": f"nova:{host}",
            }
        },
    )["server"]
    ports = client.get(f"/networking/v2.0/ports?device_id={created['id']}")["ports"]
    client.call(
        "PUT", f"/networking/v2.0/ports/{ports[0]['id']}", {"port": {"qos_policy_id": policy_id}}
    )
    wait_applied(client, created["id"], "the agent reports the current plan")
    data = client.server_plan(created["id"]).to_json()
    return {**data["server"], "plan": data["plan"]}


def test_the_agent_applies_the_plan_and_reports_each_rule(rig: Rig) -> None:
    status = _status(rig.client, rig.server["id"])
    assert status["server"]["status"] == "ACTIVE"
    report = status["report"]
    assert report["status"] == "applied", report
    rules = {(r["kind"], r["direction"]): r for r in report["rules"]}
    assert rules[("bandwidth", "ingress")]["mechanism"] == "htb shaper on the device"
    egress = rules[("bandwidth", "egress")]
    assert (egress["mechanism"], egress["polices"]) == ("ifb redirect + htb shaper", False)
    assert rules[("dscp", "egress")]["status"] == "applied"
    assert rules[("cpu_shares", "")]["status"] == "applied"


def test_limits_hold_when_measured(rig: Rig) -> None:
    verdicts = _verify(rig, rig.client.server_plan(rig.server["id"]).desired, 5)
    by_kind = {(v.kind, v.direction): v for v in verdicts}
    assert set(by_kind) == {
        ("bandwidth", "ingress"),
        ("bandwidth", "egress"),
        ("dscp", "egress"),
        ("cpu_shares", ""),
    }
    failed = [v.to_json() for v in verdicts if not v.passed]
    assert failed == []
    for kind in (("bandwidth", "ingress"), ("bandwidth", "egress")):
        # The path without the limit, measured first: far above 1.2 x 10 Mbit/s here.
        capacity = by_kind[kind].capacity
        assert capacity is not None
        assert capacity > 12_000_000, by_kind[kind]
    assert by_kind[("bandwidth", "ingress")].configured == "10000000 bit/s"  # the flavor's
    assert by_kind[("bandwidth", "egress")].configured == "3000000 bit/s"  # bw-limiter's
    assert by_kind[("dscp", "egress")].measured == 0x68  # DSCP 26 = AF31 = TOS 0x68
    assert abs(by_kind[("cpu_shares", "")].measured - 0.5) <= 0.025  # 512 vs 1024
    rig.client.record_measurement(rig.server["id"], verdicts)


def test_drift_is_repaired_within_five_seconds_and_reported(rig: Rig) -> None:
    tap = rig.server["ports"][0]["tap"]
    subprocess.run(["tc", "-n", rig.host_ns, "qdisc", "del", "dev", tap, "root"], check=True)
    subprocess.run(
        [
            "tc",
            "-n",
            rig.host_ns,
            "class",
            "change",
            "dev",
            "ifb" + tap[3:],
            "parent",
            "1:",
            "classid",
            "1:1",
            "htb",
            "rate",
            "50mbit",
        ],
        check=True,
    )
    group = Path("/sys/fs/cgroup/cpu") / rig.cgroup_root / rig.server["plan"]["instance"]["name"]
    (group / "cpu.shares").write_text("4096")
    tc = RealTrafficControl(rig.host_ns)
    took = wait_for(
        lambda: (
            tc.observe(tap).root is not None
            and tc.observe("ifb" + tap[3:]).root is not None
            and tc.observe("ifb" + tap[3:]).root.rate_bits_per_s == 3_000_000  # type: ignore[union-attr]
            and (group / "cpu.shares").read_text().strip() == "512"
        ),
        5,
        "the agent repairs the deleted qdisc, the changed class and the cgroup value",
    )
    assert took < 5
    wait_for(
        lambda: bool(_status(rig.client, rig.server["id"])["report"].get("last_drift")),
        5,
        "the repair is reported as drift",
    )
    time.sleep(1.5)  # a quiet pass later the report still says what was repaired
    last = _status(rig.client, rig.server["id"])["report"]["last_drift"]
    aspects = {d["aspect"] for d in last["drift"]}
    assert "to-instance shaper (htb on the device)" in aspects or "cpu.shares" in aspects


def test_explain_shows_every_layer(rig: Rig) -> None:
    out = subprocess.run(
        [str(QOSPLANE), "explain", rig.server["id"], "--json"],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    view = json.loads(out)
    limits = {(x["kind"], x["direction"]): x for x in view["limits"]}
    ingress = limits[("bandwidth", "ingress")]
    assert ingress["declared"][0]["key"] == "quota:vif_inbound_average"
    assert ingress["effective"]["as_written"].startswith("rate 1250kbps")
    assert ingress["applied"]["status"] == "applied"
    assert ingress["measured"]["passed"] is True
    assert ingress["meaning"].startswith("to the instance")
    text = subprocess.run(
        [str(QOSPLANE), "explain", "vm-func"],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "applied   applied by htb shaper on the device" in text
    assert "measured" in text


def test_exec_runs_inside_the_instance(rig: Rig) -> None:
    out = subprocess.run(
        [
            str(QOSPLANE),
            "exec",
            "--hypervisor",  # the rig's agent runs namespaces
            "netns",
            "--prefix",
            rig.prefix,
            "--host-netns",
            rig.host_ns,
            "--cgroup-root",
            rig.cgroup_root,
            "vm-func",
            "--",
            "sh",
            "-c",
            "ip -o addr show; cat /proc/self/cgroup",
        ],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "10.201.0." in out
    assert f"{rig.cgroup_root}/{rig.server['plan']['instance']['name']}" in out


def test_the_seed_resquota_flavor_measured(rig: Rig) -> None:
    """m1.resquota as the seed sets it: 32768 kB/s average, 2x peak, 131072 KiB burst each
    way and cpu_shares 512. Sustained to-instance goodput is the average (the peak lasts
    only the ~4 s of burst, skipped); from-instance, libvirt's police becomes an ifb
    shaper at the average."""
    nova = "/compute/v2.1"
    client = rig.client
    flavor = client.call(
        "POST", f"{nova}/flavors", {"flavor": {"name": "m1.resquota", "ram": 1024, "vcpus": 1}}
    )["flavor"]["id"]
    specs = {
        "quota:cpu_shares": "512",
        "quota:vif_outbound_average": "32768",
        "quota:vif_outbound_peak": "65536",
        "quota:vif_outbound_burst": "131072",
        "quota:vif_inbound_average": "32768",
        "quota:vif_inbound_peak": "65536",
        "quota:vif_inbound_burst": "131072",
    }
    client.call("POST", f"{nova}/flavors/{flavor}/os-extra_specs", {"extra_specs": specs})
    net_id = _network(client, "seednet", "10.202.0.0/24")
    created = client.call(
        "POST",
        f"{nova}/servers",
        {
            "server": {
                "name": "vm_resquota",
                "flavorRef": flavor,
                "networks": [{"uuid": net_id}],
                "availability_zone": f"nova:{rig.host}",
            }
        },
    )["server"]
    wait_applied(client, created["id"], "the agent applies vm_resquota")
    verdicts = _verify(rig, client.server_plan(created["id"]).desired, 5)
    by_kind = {(v.kind, v.direction): v for v in verdicts}
    assert by_kind[("bandwidth", "ingress")].configured == "262144000 bit/s"
    assert by_kind[("bandwidth", "egress")].configured == "262144000 bit/s"
    assert [v.to_json() for v in verdicts if not v.passed] == []
    client.call("DELETE", f"{nova}/servers/{created['id']}")
    wait_for(
        lambda: rig.drivers.instances.names() == {rig.server["plan"]["instance"]["name"]},
        10,
        "vm_resquota's namespace is removed",
    )


def test_a_limit_above_what_the_path_carries_is_inconclusive(rig: Rig) -> None:
    """100 Gbit/s out of the instance: no veth on this machine carries 120 Gbit/s, so the
    reading says nothing about the limit. verify says so, with both numbers, and removes
    the two scratch ends it measured the path with."""
    nova, neutron = "/compute/v2.1", "/networking/v2.0"
    client = rig.client
    flavor = client.call(
        "POST", f"{nova}/flavors", {"flavor": {"name": "m1.plain", "ram": 256, "vcpus": 1}}
    )["flavor"]["id"]
    net_id = _network(client, "fastnet", "10.209.0.0/24")
    policy_id = client.call("POST", f"{neutron}/qos/policies", {"policy": {"name": "fast"}})[
        "policy"
    ]["id"]
    rule = {"max_kbps": 100_000_000, "max_burst_kbps": 8000, "direction": "egress"}
    client.call(
        "POST",
        f"{neutron}/qos/policies/{policy_id}/bandwidth_limit_rules",
        {"bandwidth_limit_rule": rule},
    )
    created = client.call(
        "POST",
        f"{nova}/servers",
        {
            "server": {
                "name": "vm_fast",
                "flavorRef": flavor,
                "networks": [{"uuid": net_id}],
                "availability_zone": f"nova:{rig.host}",
            }
        },
    )["server"]
    (port,) = client.get(f"{neutron}/ports?device_id={created['id']}")["ports"]
    client.call("PUT", f"{neutron}/ports/{port['id']}", {"port": {"qos_policy_id": policy_id}})
    wait_applied(client, created["id"], "the agent applies vm_fast")
    verdicts = _verify(rig, client.server_plan(created["id"]).desired, 2)
    by_kind = {(v.kind, v.direction): v for v in verdicts}
    assert ("bandwidth", "ingress") not in by_kind  # nothing limits that direction
    verdict = by_kind[("bandwidth", "egress")]
    assert verdict.outcome == "inconclusive", verdict
    assert not verdict.passed
    assert verdict.capacity is not None
    assert 0 < verdict.capacity < 1.2 * 100_000_000_000, verdict
    assert verify_exit(verdicts) == EXIT_INCONCLUSIVE, [v.to_json() for v in verdicts]
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert f"{rig.prefix}scratch-" not in namespaces
    links = subprocess.run(
        ["ip", "-n", rig.host_ns, "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "tapsa" not in links
    assert "tapsb" not in links
    client.call("DELETE", f"{nova}/servers/{created['id']}")
    wait_for(
        lambda: rig.drivers.instances.names() == {rig.server["plan"]["instance"]["name"]},
        10,
        "vm_fast's namespace is removed",
    )


def test_a_cinder_read_limit_is_measured(rig: Rig) -> None:
    """The seed's Cinder workflow on this host: a front-end spec with read_iops_sec_per_gb
    on a type, a 1 GB volume attached to the server: 50 read IOPS through QEMU's throttle,
    measured from inside the instance within 3%."""
    require_root_and("qemu-storage-daemon", "qemu-io")
    client = rig.client
    project = client.get("/identity/v3/projects?name=admin")["projects"][0]["id"]
    base = f"/volume/v3/{project}"
    spec = client.call(
        "POST",
        f"{base}/qos-specs",
        {"qos_specs": {"name": "iops50", "consumer": "front-end", "read_iops_sec_per_gb": "50"}},
    )["qos_specs"]["id"]
    vtype = client.call("POST", f"{base}/types", {"volume_type": {"name": "t50"}})["volume_type"][
        "id"
    ]
    client.call("GET", f"{base}/qos-specs/{spec}/associate?vol_type_id={vtype}")
    volume = client.call(
        "POST", f"{base}/volumes", {"volume": {"name": "v50", "size": 1, "volume_type": vtype}}
    )["volume"]["id"]
    client.call(
        "POST",
        f"/compute/v2.1/servers/{rig.server['id']}/os-volume_attachments",
        {"volumeAttachment": {"volumeId": volume}},
    )
    wait_for(
        lambda: rig.drivers.volumes.observe(volume) == {"x-iops-read": 50},
        15,
        "the agent exports the volume with its limit",
    )
    verdicts = _verify(rig, client.server_plan(rig.server["id"]).desired, 5)
    disk = [v for v in verdicts if v.kind == "disk_iops"]
    assert [(v.device, v.direction, v.configured) for v in disk] == [("vdb", "read", "50 IOPS")]
    assert disk[0].passed, disk[0].to_json()
    client.call(
        "DELETE", f"/compute/v2.1/servers/{rig.server['id']}/os-volume_attachments/{volume}"
    )
    wait_for(lambda: rig.drivers.volumes.volume_ids() == set(), 15, "the export stops on detach")


def test_a_killed_agent_restarted_converges_without_leftovers(rig: Rig) -> None:
    """SIGKILL a second agent process for the same host while it applies a change (the
    thread agent is stopped first), restart it, and check the host converged."""
    flavor = rig.client.server_plan(rig.server["id"])
    del flavor
    args = [
        str(QOSPLANE),
        "agent",
        "--host",
        rig.host,
        "--hypervisor",  # as the module's thread agent
        "netns",
        "--prefix",
        rig.prefix,
        "--host-netns",
        rig.host_ns,
        "--cgroup-root",
        rig.cgroup_root,
        "--drift-check-s",
        "0.5",
    ]
    # The module's thread agent keeps running; a second agent for the same host applies
    # the same program, so the two agree. Kill the process one mid-pass, then restart.
    agent = subprocess.Popen(args, env=rig.env, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    nova = "/compute/v2.1"
    flavor_id = rig.client.get(f"{nova}/servers/{rig.server['id']}")["server"]["flavor"]["id"]
    rig.client.call(
        "POST",
        f"{nova}/flavors/{flavor_id}/os-extra_specs",
        {"extra_specs": {"quota:cpu_shares": "256"}},
    )
    time.sleep(0.05)
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    subprocess.run(
        ["ip", "-n", rig.host_ns, "link", "add", "ifbdeadbeef-00", "type", "ifb"], check=True
    )  # a leftover of the killed pass: an ifb no instance uses
    restarted = subprocess.Popen(args, env=rig.env, stderr=subprocess.DEVNULL)
    try:
        group = (
            Path("/sys/fs/cgroup/cpu") / rig.cgroup_root / rig.server["plan"]["instance"]["name"]
        )
        # The restarted process starts Python, registers and runs a pass: seconds on a
        # busy 2-core host (10 s was once too few in CI), so the bound is 30 s.
        wait_for(lambda: (group / "cpu.shares").read_text().strip() == "256", 30, "new shares")
        wait_for(
            lambda: rig.drivers.instances.ifbs() == {"ifb" + rig.server["ports"][0]["tap"][3:]},
            30,
            "the stray ifb is removed",
        )
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
    rig.client.call("DELETE", f"{nova}/servers/{rig.server['id']}")
    wait_for(
        lambda: rig.drivers.instances.names() == set(), 10, "the deleted server's namespace goes"
    )
    assert rig.drivers.instances.ifbs() == set()
    assert rig.drivers.cgroups.groups() == set()
