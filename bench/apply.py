"""How fast the agent enforces: QoS on 1,000 ports in one pass, and API change -> host.

1. In a throwaway namespace with 1,000 veth pairs, shape every port (htb root, class,
   pfifo leaf: 3,000 tc operations) three ways, on a clean namespace each time:
   - baseline: one `tc` process per operation (what a naive agent does);
   - qosplane apply: the same operations in one `tc -batch` process;
   - qosplane pass: a full reconcile pass (observe every device, compare, apply).
   Prints absolute times and ratios against the baseline. Goal: >= 20x for the apply.
2. A `qosplane serve` and an agent on a test host: 200 flavor changes through the API, each
   timed from the API's answer to the end of the agent pass that enforced it (the pass
   reads the kernel back before it ends). Prints p50 and p99. Goal: p99 < 100 ms.

Needs root and iproute2. A benchmark, not a test: it prints figures and exits 0.

    .venv/bin/python bench/apply.py [--ports N] [--changes N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from qosplane.agent.loop import Agent
from qosplane.agent.reconcile import HostDrivers, Reconciler, Target
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.compiler.enforcement.program import device_commands
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.errors import Unreachable
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import Capabilities, DeviceQos, InstanceQos, ObservedDevice, Shaper
from qosplane.model.instance import VifType
from qosplane.model.units import BitsPerSecond, Bytes

ROOT = Path(__file__).resolve().parent.parent
QOSPLANE = Path(sys.executable).parent / "qosplane"


def _ns(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)


def _veths(ns: str, count: int) -> list[str]:
    names = [f"bv{i:05d}" for i in range(count)]
    lines = [f"link add {n} type veth peer name bp{n[2:]}" for n in names]
    lines += [f"link set {n} up" for n in names]
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines), text=True, check=True)
    return names


def _lines(devices: list[str]) -> list[str]:
    shaper = Shaper(BitsPerSecond(10_000_000), BitsPerSecond(20_000_000), Bytes(125_000))
    out: list[str] = []
    for dev in devices:
        out += device_commands(DeviceQos(dev, shaper), ObservedDevice(DeviceQos(dev)))
    return out


def bench_ports(count: int) -> None:
    tag = uuid.uuid4().hex[:6]
    results: dict[str, float] = {}
    for mode in ("baseline", "batch", "pass"):
        ns = f"qpbench-{tag}-{mode}"
        _ns(ns)
        try:
            devices = _veths(ns, count)
            lines = _lines(devices)
            start = time.perf_counter()
            if mode == "baseline":
                for line in lines:
                    subprocess.run(["tc", "-n", ns, *line.split()], check=True)
            elif mode == "batch":
                RealTrafficControl(ns).apply(lines)
            else:
                reconciler = Reconciler(
                    HostDrivers(
                        RealInstances(prefix=f"qpbench{tag}-", host_netns=ns),
                        RealTrafficControl(ns),
                        RealDscpMarking(ns),
                        RealCgroups(root=f"qosplane-bench-{tag}"),
                        RealVolumes(Path(tempfile.mkdtemp(prefix="qpbench-volumes-"))),
                    ),
                    Capabilities(htb=True),
                )
                devices_qos = [
                    DeviceQos(
                        d,
                        Shaper(
                            BitsPerSecond(10_000_000), BitsPerSecond(20_000_000), Bytes(125_000)
                        ),
                    )
                    for d in devices
                ]
                target = Target("bench", 1, InstanceQos("bench", tuple(devices_qos)), (), ())
                result = reconciler.converge_targets([target])
                assert result.errors == {}
                assert result.drift_after == []
            results[mode] = time.perf_counter() - start
            check = subprocess.run(
                ["tc", "-n", ns, "class", "show", "dev", devices[-1]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "rate 10Mbit" in check, check
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
            RealInstances(prefix=f"qpbench{tag}-").remove_everything()
            RealCgroups(root=f"qosplane-bench-{tag}").remove_everything()
    ops = len(_lines(["x"])) * count
    base = results["baseline"]
    print(f"QoS on {count} ports ({ops} tc operations), each on a fresh namespace:")
    print(f"  baseline, one tc process per operation : {base:8.3f} s")
    print(
        f"  qosplane apply, one tc -batch          : {results['batch']:8.3f} s   {base / results['batch']:7.1f}x faster (goal >= 20x)"
    )
    print(
        f"  qosplane full pass, observe+apply+check: {results['pass']:8.3f} s   {base / results['pass']:7.1f}x faster"
    )


def bench_latency(changes: int) -> None:
    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix="qpbench-"))
    port = 18000 + int(tag[:3], 16) % 1000
    serve = subprocess.Popen(
        [
            str(QOSPLANE),
            "serve",
            "--no-agent",
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host_ns = f"qpbench-lat-{tag}"
    _ns(host_ns)
    stop = threading.Event()
    instances = RealInstances(prefix=f"qpbl{tag}-", host_netns=host_ns)
    cgroups = RealCgroups(root=f"qosplane-bench-{tag}")
    try:
        for _ in range(100):
            try:
                QosplaneClient(
                    Credentials(
                        f"http://127.0.0.1:{port}",
                        "admin",
                        json.loads((state / "admin.json").read_text())["password"],
                        "admin",
                    )
                ).token()
                break
            except (Unreachable, OSError, ValueError):  # not listening yet
                time.sleep(0.1)
        admin = json.loads((state / "admin.json").read_text())
        client = QosplaneClient(
            Credentials(f"http://127.0.0.1:{port}", "admin", admin["password"], "admin")
        )
        enforced: list[float] = []
        agent = Agent(
            client,
            "bench-host",
            Reconciler(
                HostDrivers(
                    instances,
                    RealTrafficControl(host_ns),
                    RealDscpMarking(host_ns),
                    cgroups,
                    RealVolumes(state / "volumes"),
                ),
                Capabilities(htb=True, ifb_mirred=True),
            ),
            facts=HostFacts(vif_type=VifType.HYBRID),
            drift_check_s=1.0,
            on_pass=lambda r: enforced.append(time.perf_counter()) if r.commands else None,
        )
        agent.register()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        nova = "/compute/v2.1"
        flavor = client.call(
            "POST", f"{nova}/flavors", {"flavor": {"name": "bench", "ram": 512, "vcpus": 1}}
        )["flavor"]["id"]
        client.call(
            "POST",
            f"{nova}/flavors/{flavor}/os-extra_specs",
            {"extra_specs": {"quota:vif_inbound_average": "1000"}},
        )
        net = client.call("POST", "/networking/v2.0/networks", {"network": {"name": "bn"}})[
            "network"
        ]["id"]
        client.call(
            "POST",
            "/networking/v2.0/subnets",
            {"subnet": {"network_id": net, "cidr": "10.250.0.0/24", "ip_version": 4}},
        )
        client.call(
            "POST",
            f"{nova}/servers",
            {
                "server": {
                    "name": "b",
                    "flavorRef": flavor,
                    "networks": [{"uuid": net}],
                    "availability_zone": "nova:bench-host",
                }
            },
        )
        deadline = time.monotonic() + 30
        while not enforced and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies: list[float] = []
        for i in range(changes):
            count = len(enforced)
            value = str(2000 + i)  # differs from every earlier value
            client.call(
                "POST",
                f"{nova}/flavors/{flavor}/os-extra_specs",
                {"extra_specs": {"quota:vif_inbound_average": value}},
            )
            answered = time.perf_counter()
            limit = time.monotonic() + 10
            while len(enforced) == count and time.monotonic() < limit:
                time.sleep(0.0005)
            if len(enforced) == count:
                raise SystemExit(f"change {i} was not enforced within 10 s")
            latencies.append(enforced[count] - answered)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(
            f"API change -> enforced on the host, {changes} flavor changes (SQLite, agent on loopback):"
        )
        print(
            f"  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   max {latencies[-1] * 1000:6.1f} ms   (goal p99 < 100 ms)"
        )
    finally:
        stop.set()
        serve.terminate()
        serve.wait(timeout=10)
        instances.remove_everything()
        cgroups.remove_everything()
        subprocess.run(["ip", "netns", "del", host_ns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    bench_ports(args.ports)
    bench_latency(args.changes)


if __name__ == "__main__":
    main()
