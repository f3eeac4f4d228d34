"""How long a real guest takes from `server create` to booted, shaped and verified, and
what it costs in memory (issue 12), against a namespace instance measured in the same run.

A `qosplane serve` and one agent thread per kind of instance, each on a throwaway host
namespace: one with network namespaces (the baseline), one with libvirt real guests (its
own libvirtd; KVM where it boots the guest image, else TCG, and the run says which). For 1,
2 and 4 servers at once, each with a 10 Mbit/s flavor both ways on one network, it times
from the API's answer to:
- applied: the agent reported every server's plan (ACTIVE);
- booted: every guest's qemu-ga answers (namespaces: the same moment as applied);
- verified: `verify` measured every limit from inside the instance, one server after the
  other, each direction for 2 s after the path's own capacity.
Memory per guest is the resident set of its QEMU process once booted. Ratios are guests
over namespaces for the same count. Everything made is removed at the end.

Needs root, iproute2, nftables, iperf3, libvirt and QEMU, and the guest image's packages
(scripts/host-packages). A benchmark, not a test: it prints figures and exits 0.

    .venv/bin/python bench/guests.py [--counts 1,2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from qosplane.agent.loop import Agent
from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.hypervisor import LibvirtDaemon, RealHypervisor
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.errors import Unreachable
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import Capabilities
from qosplane.model.instance import VifType

QOSPLANE = Path(sys.executable).parent / "qosplane"
NOVA, NEUTRON = "/compute/v2.1", "/networking/v2.0"
TEN_MBIT_KB_PER_S = "1250"


@dataclass
class Rig:
    kind: str
    host: str
    host_ns: str
    drivers: HostDrivers
    hypervisor: RealHypervisor | None
    caps: Capabilities  # libvirt's for the guests: verify then measures inside them


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(state: Path) -> Iterator[QosplaneClient]:
    port = _free_port()
    serve = subprocess.Popen(
        [str(QOSPLANE), "serve", "--no-agent", "--state-dir", str(state), "--listen",
         f"127.0.0.1:{port}", "--password-hash-rounds", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                admin = json.loads((state / "admin.json").read_text())
                client = QosplaneClient(
                    Credentials(f"http://127.0.0.1:{port}", "admin", admin["password"], "admin")
                )
                client.token()
                break
            except (Unreachable, OSError, ValueError):  # not listening yet
                time.sleep(0.1)
        yield client
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)


def _qemu_rss_bytes(name: str) -> int:
    """The resident set of the QEMU running domain `name` (libvirt names it guest=NAME)."""
    pids = subprocess.run(
        ["pgrep", "-f", f"guest={name},"], capture_output=True, text=True, check=False
    ).stdout.split()
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _run_count(
    client: QosplaneClient, rig: Rig, flavor: str, net: str, count: int
) -> dict[str, float]:
    start = time.perf_counter()
    ids = [
        client.call(
            "POST",
            f"{NOVA}/servers",
            {"server": {"name": f"{rig.kind}-{count}-{i}", "flavorRef": flavor,
                        "networks": [{"uuid": net}], "availability_zone": f"nova:{rig.host}"}},
        )["server"]["id"]
        for i in range(count)
    ]  # fmt: skip
    _wait(
        lambda: all(
            client.call("GET", f"{NOVA}/servers/{i}")["server"]["status"] == "ACTIVE" for i in ids
        ),
        300,
        "every server applied",
    )
    applied = time.perf_counter() - start
    desired = [client.server_plan(i).desired for i in ids]
    if rig.hypervisor is not None:
        for server in desired:
            rig.hypervisor.agent(server.plan.instance_name).wait_ready(300)
    booted = time.perf_counter() - start
    memory = [_qemu_rss_bytes(s.plan.instance_name) for s in desired if rig.hypervisor is not None]
    failed = 0
    for server in desired:
        verdicts = verify_server(
            server, rig.caps, rig.drivers.instances, rig.drivers.cgroups,
            rig.drivers.volumes, 2, rig.hypervisor,
        )  # fmt: skip
        failed += sum(1 for v in verdicts if v.kind == "bandwidth" and v.outcome != "pass")
    verified = time.perf_counter() - start
    for i in ids:
        client.call("DELETE", f"{NOVA}/servers/{i}")
    _wait(lambda: not rig.drivers.instances.names(), 120, "every instance removed")
    return {
        "applied": applied,
        "booted": booted,
        "verified": verified,
        "not_passed": float(failed),
        "rss_mib": (sum(memory) / len(memory) / 2**20) if memory else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,2,4")
    counts = [int(c) for c in parser.parse_args().counts.split(",")]
    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix="qpbench-guests-"))
    made_ns: list[str] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    daemon: LibvirtDaemon | None = None
    rigs: list[Rig] = []
    machine_groups = set(Path("/sys/fs/cgroup").glob("*/machine"))
    try:
        with _serve(state / "api") as client:
            for kind in ("netns", "guest"):
                host_ns = f"qpbg-{kind[:2]}-{tag}"
                subprocess.run(["ip", "netns", "add", host_ns], check=True)
                made_ns.append(host_ns)
                hypervisor = None
                if kind == "guest":
                    daemon = LibvirtDaemon(state / "libvirtd", host_ns)
                    daemon.ensure()
                    hypervisor = RealHypervisor(
                        daemon.uri, state / "images", f"qpbg{tag}-",
                        guest_images=state / "guest-image",
                    )  # fmt: skip
                    print(f"# {hypervisor.prepare_guests()}")
                drivers = HostDrivers(
                    RealInstances(prefix=f"qpb{kind[:1]}{tag}-", host_netns=host_ns,
                                  guest_taps=hypervisor is not None),
                    RealTrafficControl(host_ns), RealDscpMarking(host_ns),
                    RealCgroups(root=f"qosplane-bench-{kind}-{tag}"),
                    RealVolumes(state / f"volumes-{kind}"), hypervisor=hypervisor,
                )  # fmt: skip
                caps = probe()
                if hypervisor is not None:
                    caps = replace(caps, libvirt=True)
                rig = Rig(kind, f"bench-{kind}-{tag}", host_ns, drivers, hypervisor, caps)
                agent = Agent(client, rig.host, Reconciler(drivers, caps),
                              facts=HostFacts(vif_type=VifType.HYBRID), drift_check_s=0.5)  # fmt: skip
                agent.register()
                thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
                thread.start()
                threads.append(thread)
                rigs.append(rig)
            flavor = client.call(
                "POST", f"{NOVA}/flavors", {"flavor": {"name": "b10", "ram": 192, "vcpus": 1}}
            )["flavor"]["id"]
            specs = {"quota:vif_inbound_average": TEN_MBIT_KB_PER_S,
                     "quota:vif_outbound_average": TEN_MBIT_KB_PER_S}  # fmt: skip
            client.call("POST", f"{NOVA}/flavors/{flavor}/os-extra_specs", {"extra_specs": specs})
            net = client.call("POST", f"{NEUTRON}/networks", {"network": {"name": "bg"}})[
                "network"
            ]["id"]
            client.call(
                "POST",
                f"{NEUTRON}/subnets",
                {"subnet": {"network_id": net, "cidr": "10.251.0.0/24", "ip_version": 4}},
            )
            print(
                f"{'servers':>7} {'kind':>6} {'applied s':>10} {'booted s':>9} "
                f"{'verified s':>11} {'not passed':>10} {'RSS MiB/guest':>14} {'verified ratio':>15}"
            )
            for count in counts:
                results = {rig.kind: _run_count(client, rig, flavor, net, count) for rig in rigs}
                base = results["netns"]["verified"]
                for kind, r in results.items():
                    print(
                        f"{count:>7} {kind:>6} {r['applied']:>10.2f} {r['booted']:>9.2f} "
                        f"{r['verified']:>11.2f} {r['not_passed']:>10.0f} {r['rss_mib']:>14.1f} "
                        f"{r['verified'] / base:>14.2f}x"
                    )
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
    finally:
        stop.set()
        for rig in rigs:
            if rig.hypervisor is not None:
                rig.hypervisor.remove_everything()
                rig.hypervisor.close()
            assert isinstance(rig.drivers.instances, RealInstances)
            rig.drivers.instances.remove_everything()
            assert isinstance(rig.drivers.cgroups, RealCgroups)
            rig.drivers.cgroups.remove_everything()
        if daemon is not None:
            daemon.stop()
        for leftover in set(Path("/sys/fs/cgroup").glob("*/machine")) - machine_groups:
            with contextlib.suppress(OSError):
                leftover.rmdir()
        for ns in made_ns:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
