"""The real `openstack` CLI (python-openstackclient 10.5.0, installed by scripts/venv.sh into
.venv-osc) against a `qosplane serve` started here: the seed's Nova flavor and Neutron QoS
commands, in order, with the fields the seed shows, then the error cases.

Skips with the reason when the client is not installed, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import QOSPLANE, openrc_env, running_serve

ROOT = Path(__file__).resolve().parent.parent
OSC = Path(os.environ.get("OSC_VENV", ROOT / ".venv-osc")) / "bin" / "openstack"

SEED_PROPERTIES = (
    "quota:cpu_shares='512', quota:disk_read_bytes_sec='1000000', "
    "quota:disk_write_bytes_sec='1024000', quota:vif_inbound_average='32768', "
    "quota:vif_inbound_burst='131072', quota:vif_inbound_peak='65536', "
    "quota:vif_outbound_average='32768', quota:vif_outbound_burst='131072', "
    "quota:vif_outbound_peak='65536'"
)


class Cloud:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(OSC), *shlex.split(command)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, command: str) -> str:
        result = self.run(command)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result.stdout

    def json(self, command: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.ok(command + " -f json"))
        return data


def server_plan(cloud: Cloud, server: str) -> dict[str, Any]:
    """`qosplane plan --server NAME --json`, as an operator runs it after `eval $(openrc)`."""
    out = subprocess.run(
        [str(QOSPLANE), "plan", "--server", server, "--json"],
        env=cloud.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plan: dict[str, Any] = json.loads(out)
    return plan


def require_osc() -> None:
    """Skip without the openstack CLI, saying why; under CI=true, fail instead."""
    if not OSC.exists():
        reason = f"the openstack CLI is not installed at {OSC} (scripts/venv.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    require_osc()
    state = tmp_path_factory.mktemp("state")
    with running_serve(state):
        yield Cloud(openrc_env(state))


def test_seed_flavors(cloud: Cloud) -> None:
    cloud.ok("flavor create --ram 1024 --disk 20 --vcpus 1 m1.normal")
    cloud.ok("flavor create --ram 1024 --disk 20 --vcpus 1 m1.resquota")
    cloud.ok(
        "flavor set m1.resquota --property quota:cpu_shares=512 "
        "--property quota:disk_read_bytes_sec=1000000 --property quota:disk_write_bytes_sec=1024000 "
        "--property quota:vif_outbound_average=32768 --property quota:vif_outbound_peak=65536 "
        "--property quota:vif_outbound_burst=131072 --property quota:vif_inbound_average=32768 "
        "--property quota:vif_inbound_peak=65536 --property quota:vif_inbound_burst=131072"
    )
    shown = cloud.ok("flavor show m1.resquota")
    assert SEED_PROPERTIES in shown
    data = cloud.json("flavor show m1.normal")
    assert (data["ram"], data["disk"], data["vcpus"], data["os-flavor-access:is_public"]) == (
        1024,
        20,
        1,
        True,
    )
    listed = cloud.ok("flavor list -f value -c Name").split()
    assert sorted(listed) == ["m1.normal", "m1.resquota"]


def test_seed_qos_policy_and_rules(cloud: Cloud) -> None:
    policy = cloud.json("network qos policy create bw-limiter")
    assert (policy["name"], policy["shared"], policy["is_default"], policy["rules"]) == (
        "bw-limiter",
        False,
        False,
        [],
    )
    rule = cloud.json(
        "network qos rule create --type bandwidth-limit --max-kbps 3000 "
        "--max-burst-kbits 300 --egress bw-limiter"
    )
    assert (rule["direction"], rule["max_kbps"], rule["max_burst_kbps"]) == ("egress", 3000, 300)
    cloud.ok("network qos policy create dscp-marking")
    dscp = cloud.json("network qos rule create dscp-marking --type dscp-marking --dscp-mark 26")
    assert dscp["dscp_mark"] == 26
    rows = cloud.ok("network qos rule list bw-limiter -f value -c ID -c 'Max Kbps'")
    assert rows.split() == [str(rule["id"]), "3000"]
    cloud.ok(f"network qos rule set --max-kbps 4000 bw-limiter {rule['id']}")
    assert cloud.json(f"network qos rule show bw-limiter {rule['id']}")["max_kbps"] == 4000
    cloud.ok("network qos policy set --share bw-limiter")
    assert cloud.json("network qos policy show bw-limiter")["shared"] is True
    types = cloud.ok("network qos rule type list -f value").split()
    assert "dscp_marking" in types


def test_error_cases(cloud: Cloud) -> None:
    cloud.ok("network qos policy create errors")
    bad_dscp = cloud.run("network qos rule create errors --type dscp-marking --dscp-mark 27")
    assert bad_dscp.returncode == 1
    assert "400" in bad_dscp.stderr
    assert "dscp_mark: got 27" in bad_dscp.stderr
    cloud.ok("network qos rule create --type bandwidth-limit --max-kbps 1000 --egress errors")
    second = cloud.run(
        "network qos rule create --type bandwidth-limit --max-kbps 2000 --egress errors"
    )
    assert second.returncode == 1
    assert "409" in second.stderr
    assert "already exists" in second.stderr
    cloud.ok("flavor create --ram 512 --disk 1 --vcpus 1 m1.err")
    bad_key = cloud.run("flavor set m1.err --property quota:cpu_sharez=1")
    assert bad_key.returncode == 1
    assert "quota:cpu_sharez" in bad_key.stderr
    assert cloud.json("flavor show m1.err")["properties"] == {}
    missing = cloud.run("network qos policy show no-such-policy")
    assert missing.returncode == 1
    assert "No QoSPolicy found for no-such-policy" in missing.stderr


def test_seed_servers_ports_and_plans(cloud: Cloud, tmp_path: Path) -> None:
    stdin = tmp_path / "image-data"
    stdin.write_bytes(b"")
    with stdin.open("rb") as data:
        image = subprocess.run(
            [str(OSC), "image", "create", "rhel7", "-f", "json"],
            env=cloud.env,
            stdin=data,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert image.returncode == 0, image.stderr
    cloud.ok("keypair create sshkey_test")
    cloud.ok("security group create sg_test")
    for net, cidr in (
        ("mplane_vlan11", "10.11.0.0/24"),
        ("provider_test15", "192.168.15.0/24"),
        ("provider_test16", "192.168.16.0/24"),
    ):
        cloud.ok(f"network create {net}")
        cloud.ok(f"subnet create --network {net} --subnet-range {cidr} {net}-subnet")
    nets = "--network mplane_vlan11 --network provider_test15 --network provider_test16"
    common = f"--key-name sshkey_test --image rhel7 --security-group sg_test {nets} --availability-zone az_vlan"
    # Zones come from aggregates of registered hosts, as in Nova: az_vlan does not exist yet.
    early = cloud.run(f"server create --flavor m1.normal {common} vm_early")
    assert early.returncode == 1
    assert "The requested availability zone is not available" in early.stderr
    hosts = cloud.ok("hypervisor list -f value -c 'Hypervisor Hostname' -c State").split()
    assert hosts[1:] == ["up"]
    agg = cloud.json("aggregate create --zone az_vlan agg_vlan")
    assert agg["availability_zone"] == "az_vlan"
    cloud.ok(f"aggregate add host agg_vlan {hosts[0]}")
    assert cloud.json("aggregate show agg_vlan")["hosts"] == [hosts[0]]
    zones = cloud.ok(
        "availability zone list --compute --long -f value -c 'Zone Name' -c 'Host Name'"
    )
    assert f"az_vlan {hosts[0]}" in zones
    normal = cloud.json(f"server create --wait --flavor m1.normal {common} vm_normal")
    assert normal["status"] == "ACTIVE"
    assert normal["OS-EXT-AZ:availability_zone"] == "az_vlan"
    assert normal["OS-EXT-SRV-ATTR:host"] == hosts[0]
    addresses = normal["addresses"]
    assert isinstance(addresses, dict)
    assert sorted(addresses) == ["mplane_vlan11", "provider_test15", "provider_test16"]
    table = cloud.ok(f"server create --wait --flavor m1.resquota {common} vm_resquota")
    assert table.count("name='sg_test'") == 3
    assert (
        "mplane_vlan11=10.11.0.3; provider_test15=192.168.15.3; provider_test16=192.168.16.3"
        in table
    )

    plan = server_plan(cloud, "vm_resquota")
    assert plan["cgroup"]["v1"] == {"cpu.shares": "512"}
    assert plan["qemu_drives"]["vda"].endswith(
        "throttling.bps-read=1000000,throttling.bps-write=1024000"
    )
    assert len(plan["tc"]) == 3
    assert plan["revision"] == 1

    cloud.ok("network qos policy create bw-seed")
    cloud.ok(
        "network qos rule create --type bandwidth-limit --max-kbps 3000 --max-burst-kbits 300 --egress bw-seed"
    )
    port_line = next(
        line
        for line in cloud.ok("port list -f value -c ID -c 'Fixed IP Addresses'").splitlines()
        if "192.168.16.2'" in line
    )
    port_id = port_line.split()[0]
    cloud.ok(f"port set {port_id} --qos-policy bw-seed")
    shown = cloud.json(f"port show {port_id}")
    assert shown["device_id"] == normal["id"]
    assert shown["qos_policy_id"] == cloud.json("network qos policy show bw-seed")["id"]
    plan = server_plan(cloud, "vm_normal")
    tap = "tap" + port_id[:11]
    assert [
        "ovs-vsctl",
        "set",
        "Interface",
        tap,
        "ingress_policing_rate=3000",
        "ingress_policing_burst=300",
    ] in plan["ovs"]
    assert plan["revision"] == 2

    in_use = cloud.run("network qos policy delete bw-seed")
    assert in_use.returncode == 1
    assert "409" in in_use.stderr
    assert f"is used by port {port_id}" in in_use.stderr
    cloud.ok(f"port unset --qos-policy {port_id}")
    cloud.ok("network qos policy delete bw-seed")


def test_cinder_qos_workflow_reaches_the_plan(cloud: Cloud) -> None:
    spec = cloud.json(
        "volume qos create --consumer front-end --property read_iops_sec_per_gb=10 "
        "--property write_iops_sec_per_gb=5 iops-per-gb"
    )
    assert spec["consumer"] == "front-end"
    cloud.ok("volume type create qos-type")
    cloud.ok("volume qos associate iops-per-gb qos-type")
    assert cloud.json("volume qos show iops-per-gb")["associations"] == ["qos-type"]
    assert cloud.json("volume create --type qos-type --size 10 vol-qos")["size"] == 10
    attach = cloud.ok("server add volume vm_resquota vol-qos")
    assert "/dev/vdb" in attach
    volume = cloud.json("volume show vol-qos")
    assert volume["status"] == "in-use"
    plan = server_plan(cloud, "vm_resquota")
    # Cinder's per-GB: 10 IOPS/GB and 5 IOPS/GB on a 10 GB volume.
    assert plan["qemu_drives"]["vdb"].endswith("throttling.iops-read=100,throttling.iops-write=50")
    assert "<read_iops_sec>100</read_iops_sec>" in plan["domain_xml"]
    cloud.ok("volume qos unset --property write_iops_sec_per_gb iops-per-gb")
    plan = server_plan(cloud, "vm_resquota")
    assert plan["qemu_drives"]["vdb"].endswith("throttling.iops-read=100")
    in_use = cloud.run("volume qos delete iops-per-gb")
    assert in_use.returncode == 1
    assert "still in use" in in_use.stderr
    cloud.ok("volume qos delete --force iops-per-gb")
    bad = cloud.run(
        "volume qos create --consumer front-end --property total_iops_sec=10 "
        "--property read_iops_sec=5 mixed"
    )
    assert bad.returncode == 1
    assert "total and read/write limits cannot be set at the same time" in bad.stderr


def test_identity_admin_commands_and_a_member_is_refused(cloud: Cloud) -> None:
    cloud.ok("project create demo")
    cloud.ok("user create --project demo --password pw-alice alice")
    cloud.ok("role add --project demo --user alice member")
    rows = cloud.ok("role assignment list --names -f value -c Role -c User -c Project")
    assert "member alice@Default demo@Default" in rows
    alice = Cloud(
        {**cloud.env, "OS_USERNAME": "alice", "OS_PASSWORD": "pw-alice", "OS_PROJECT_NAME": "demo"}
    )
    refused = alice.run("flavor set m1.normal --property quota:cpu_shares=256")
    assert refused.returncode == 1
    assert "403" in refused.stderr
    assert "m1.normal" in alice.ok("flavor list -f value -c Name")
    # Neutron's default policy: creating QoS policies is for admins and project managers
    # (neutron/conf/policies/qos.py), so alice, a member, is refused.
    refused = alice.run("network qos policy create alice-policy")
    assert refused.returncode == 1
    assert "403" in refused.stderr or "Forbidden" in refused.stderr, refused.stderr
    cloud.ok("network qos policy create --project demo alice-policy")
    # alice's project sees its own policies and shared ones, not admin's private ones.
    visible = alice.ok("network qos policy list -f value -c Name").split()
    assert "alice-policy" in visible
    assert "bw-limiter" in visible  # shared by test_seed_qos_policy_and_rules
    assert "dscp-marking" not in visible
    bad = Cloud(
        {**cloud.env, "OS_USERNAME": "alice", "OS_PASSWORD": "wrong", "OS_PROJECT_NAME": "demo"}
    ).run("flavor list")
    assert bad.returncode == 1
    assert "401" in bad.stderr


def test_private_flavor_access_detach_and_deletes(cloud: Cloud) -> None:
    """Runs after the identity test: project demo and its member alice exist."""
    alice = Cloud(
        {**cloud.env, "OS_USERNAME": "alice", "OS_PASSWORD": "pw-alice", "OS_PROJECT_NAME": "demo"}
    )
    cloud.ok("flavor create --private --ram 512 --disk 1 --vcpus 1 m1.private")
    assert "m1.private" not in alice.ok("flavor list -f value -c Name")
    cloud.ok("flavor set --project demo m1.private")
    demo_id = cloud.json("project show demo")["id"]
    assert cloud.json("flavor show m1.private")["access_project_ids"] == [demo_id]
    assert "m1.private" in alice.ok("flavor list -f value -c Name")
    cloud.ok("flavor unset --project demo m1.private")
    assert "m1.private" not in alice.ok("flavor list -f value -c Name")

    refused = cloud.run("volume delete vol-qos")
    assert refused.returncode == 1
    assert cloud.json("volume show vol-qos")["status"] == "in-use"
    cloud.ok("server remove volume vm_resquota vol-qos")
    assert cloud.json("volume show vol-qos")["status"] == "available"
    assert "vdb" not in server_plan(cloud, "vm_resquota")["qemu_drives"]
    cloud.ok("volume delete vol-qos")
    assert "vol-qos" not in cloud.ok("volume list -f value -c Name")

    ports_before = cloud.ok("port list -f value -c ID").split()
    cloud.ok("server delete --wait vm_normal")
    assert "vm_normal" not in cloud.ok("server list -f value -c Name").split()
    assert len(cloud.ok("port list -f value -c ID").split()) == len(ports_before) - 3


def test_a_port_created_alone_carries_its_policy_into_a_server(cloud: Cloud) -> None:
    """`port create --qos-policy`, then `server create --port`: the server's plan holds the
    port's policy; the port outlives the server (unbound, as Nova keeps ports it did not
    create) and is deleted on its own."""
    cloud.ok("network create net_ports")
    cloud.ok("subnet create --network net_ports --subnet-range 10.99.0.0/24 net_ports-subnet")
    policy = cloud.json("network qos policy create port-only")
    cloud.ok("network qos rule create --type bandwidth-limit --max-kbps 2000 --egress port-only")
    port = cloud.json("port create --network net_ports --qos-policy port-only p-alone")
    assert (port["qos_policy_id"], port["device_id"]) == (policy["id"], "")
    server = cloud.json(
        "server create --wait --flavor m1.normal --image rhel7 --port p-alone vm_port"
    )
    assert server["status"] == "ACTIVE"
    assert cloud.json("port show p-alone")["device_id"] == server["id"]
    plan = server_plan(cloud, "vm_port")
    egress = [
        e
        for e in plan["effective"]
        if e["kind"] == "bandwidth"
        and e["direction"] == "egress"
        and e.get("port_id") == port["id"]
    ]
    assert [e["limit"]["rate_bits_per_s"] for e in egress] == [2_000_000]
    again = cloud.run("server create --flavor m1.normal --image rhel7 --port p-alone vm_port2")
    assert again.returncode == 1
    assert "in use" in again.stderr
    in_use = cloud.run("port delete p-alone")
    assert in_use.returncode == 1
    assert "in use by server" in in_use.stderr
    cloud.ok("server delete --wait vm_port")
    kept = cloud.json("port show p-alone")
    assert (kept["device_id"], kept["qos_policy_id"]) == ("", policy["id"])
    cloud.ok("port delete p-alone")
    assert cloud.run("port show p-alone").returncode == 1
