"""The agent end to end with libvirt instances (--hypervisor libvirt), as root: a
`qosplane serve` started here, an agent confined to a throwaway host namespace with a
libvirtd of its own; a server created through the API runs as the plan's domain under
TCG or KVM with the flavor's cpu_shares and disk limits; a flavor change is applied live
(the same QEMU process keeps running); a `virsh blkdeviotune` behind the agent's back is
repaired within 5 s and reported; deleting the server undefines the domain.

Needs root, libvirt (libvirtd, qemu-system-x86_64) and libvirt-python; CI installs them
(scripts/host-packages, scripts/venv.sh), elsewhere the module skips saying why.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from qosplane.agent.reconcile import HostDrivers
from qosplane.cli.hostside import LIBVIRT_TOOLS
from qosplane.client.http import QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.hypervisor import LibvirtDaemon, RealHypervisor
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import DomainQos
from qosplane.model.instance import VifType
from tests.conftest import require_python_module, require_root_and
from tests.hostkit import HOST_TOOLS, remove_everything
from tests.serving import QOSPLANE, serve_with_agent, wait_applied, wait_for
from tests.test_agent_functional import _status

NOVA = "/compute/v2.1"


@dataclass
class LibvirtRig:
    client: QosplaneClient
    env: dict[str, str]
    hypervisor: RealHypervisor
    server: dict[str, Any]
    flavor_id: str

    @property
    def domain(self) -> str:
        return str(self.server["plan"]["instance"]["name"])

    def live(self) -> DomainQos:
        seen = self.hypervisor.observe(self.domain)
        assert seen is not None, "the domain does not run"
        return seen

    def qemu_pid(self) -> int:
        found = subprocess.run(
            ["pgrep", "-f", f"guest={self.domain}"], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(found) == 1, found
        return int(found[0])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibvirtRig]:
    require_root_and(*HOST_TOOLS, *LIBVIRT_TOOLS, "pgrep")
    require_python_module("libvirt", "libvirt-python; scripts/venv.sh installs it")
    tag = uuid.uuid4().hex[:6]
    state = tmp_path_factory.mktemp("state")
    host_ns = f"qpl-host-{tag}"
    prefix = f"qpl{tag}-"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    daemon = LibvirtDaemon(state / "libvirt", host_ns)
    machine_before = set(Path("/sys/fs/cgroup").glob("*/machine"))
    instances = RealInstances(prefix=prefix, host_netns=host_ns)
    cgroups = RealCgroups(root=f"qosplane-ltest-{tag}")
    volumes = RealVolumes(state / "volumes")
    hypervisor: RealHypervisor | None = None
    try:
        daemon.ensure()
        hypervisor = RealHypervisor(daemon.uri, state / "images", prefix)
        drivers = HostDrivers(
            instances,
            RealTrafficControl(host_ns),
            RealDscpMarking(host_ns),
            cgroups,
            volumes,
            None,
            hypervisor,
        )
        caps = replace(probe(), libvirt=True)
        with serve_with_agent(
            state,
            f"qpl-{tag}",
            drivers,
            caps,
            HostFacts(vif_type=VifType.HYBRID, virt_type="qemu"),
            drift_check_s=0.5,
        ) as hosted:
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"} | {
                k: v for k, v in hosted.env.items() if k.startswith("OS_")
            }
            server, flavor_id = _make_server(hosted.client, hosted.host)
            yield LibvirtRig(hosted.client, env, hypervisor, server, flavor_id)
    finally:
        if hypervisor is not None:
            hypervisor.remove_everything()
            hypervisor.close()
        daemon.stop()
        remove_everything(instances, cgroups, volumes, host_ns)
        for leftover in set(Path("/sys/fs/cgroup").glob("*/machine")) - machine_before:
            try:
                leftover.rmdir()
            except OSError as exc:
                raise AssertionError(f"{leftover} left behind: {exc}") from exc


def _make_server(client: QosplaneClient, host: str) -> tuple[dict[str, Any], str]:
    flavor = client.call(
        "POST", f"{NOVA}/flavors", {"flavor": {"name": "m1.lv", "ram": 512, "vcpus": 1}}
    )["flavor"]["id"]
    client.call(
        "POST",
        f"{NOVA}/flavors/{flavor}/os-extra_specs",
        {"extra_specs": {"quota:cpu_shares": "512", "quota:disk_read_bytes_sec": "1000000"}},
    )
    created = client.call(
        "POST",
        f"{NOVA}/servers",
        {
            "server": {
                "name": "vm-lv",
                "flavorRef": flavor,
                "networks": "none",
                "availability_zone": f"nova:{host}",
            }
        },
    )["server"]
    wait_applied(client, created["id"], "the agent reports the current plan")
    data = client.server_plan(created["id"]).to_json()
    return {**data["server"], "plan": data["plan"]}, flavor


def test_the_server_runs_as_the_plans_domain_with_its_limits(rig: LibvirtRig) -> None:
    status = _status(rig.client, rig.server["id"])
    assert status["server"]["status"] == "ACTIVE"
    rules = {(r["kind"], r["direction"]): r for r in status["report"]["rules"]}
    assert rules[("cpu_shares", "")]["mechanism"].startswith("libvirt cputune")
    assert rules[("disk_bytes", "read")]["mechanism"].startswith("libvirt iotune")
    live = rig.live()
    assert dict(live.scheduler)["cpu_shares"] == 512
    assert live.iotune_map()["vda"]["read_bytes_sec"] == 1_000_000
    # libvirt wrote the domain's cgroup itself.
    groups = list(Path("/sys/fs/cgroup/cpu/machine").glob(f"qemu-*-{rig.domain}.libvirt-qemu"))
    assert len(groups) == 1
    assert (groups[0] / "cpu.shares").read_text().strip() == "512"


def test_a_flavor_change_is_applied_live_without_restarting_qemu(rig: LibvirtRig) -> None:
    pid = rig.qemu_pid()
    rig.client.call(
        "POST",
        f"{NOVA}/flavors/{rig.flavor_id}/os-extra_specs",
        {"extra_specs": {"quota:cpu_shares": "256", "quota:disk_read_iops_sec": "50"}},
    )
    wait_for(
        lambda: (
            dict(rig.live().scheduler)["cpu_shares"] == 256
            and rig.live().iotune_map()["vda"]["read_iops_sec"] == 50
        ),
        5,
        "the new shares and iotune are live",
    )
    assert rig.qemu_pid() == pid


def test_a_virsh_change_behind_the_agents_back_is_repaired_and_reported(rig: LibvirtRig) -> None:
    want = rig.live().iotune_map()["vda"]["read_bytes_sec"]
    assert want == 1_000_000
    subprocess.run(
        [
            "virsh",
            "-c",
            rig.hypervisor.uri,
            "blkdeviotune",
            rig.domain,
            "vda",
            "--read-bytes-sec",
            "5000000",
            "--live",
        ],
        check=True,
        capture_output=True,
    )
    assert rig.live().iotune_map()["vda"]["read_bytes_sec"] == 5_000_000
    took = wait_for(
        lambda: rig.live().iotune_map()["vda"]["read_bytes_sec"] == want,
        5,
        "the agent restores read_bytes_sec",
    )
    assert took < 5
    wait_for(
        lambda: (
            "libvirt iotune read_bytes_sec"
            in {
                d["aspect"]
                for d in (
                    _status(rig.client, rig.server["id"])["report"].get("last_drift") or {}
                ).get("drift", [])
            }
        ),
        5,
        "the repair is reported as drift",
    )


def test_explain_names_libvirt_as_the_mechanism(rig: LibvirtRig) -> None:
    text = subprocess.run(
        [str(QOSPLANE), "explain", rig.server["id"]],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "applied by libvirt iotune (virDomainSetBlockIoTune, QEMU throttling)" in text
    assert "applied by libvirt cputune" in text


def test_deleting_the_server_undefines_its_domain(rig: LibvirtRig) -> None:
    rig.client.call("DELETE", f"{NOVA}/servers/{rig.server['id']}")
    wait_for(lambda: rig.hypervisor.names() == set(), 10, "the domain is undefined")
    assert not list(Path("/sys/fs/cgroup/cpu/machine").glob(f"qemu-*-{rig.domain}*"))
