"""How fast the agent configures QoS through Open vSwitch (--switch ovs).

In a throwaway namespace with its own ovsdb-server and ovs-vswitchd (userspace datapath),
N veth ports plugged into br-int each get a linux-htb queue (10 Mbit/s), a meter (3000
kbit/s) and the DSCP 26 flows, two ways, from the same clean state:
- baseline: what a script of ovs-vsctl/ovs-ofctl commands does, one process per port and
  object (a QoS+Queue ovs-vsctl transaction, an add-meter, two add-flow per port);
- qosplane: RealSwitch.apply, one OVSDB transaction for every row, then every meter and
  flow as OpenFlow 1.3 messages on one connection to the bridge's management socket,
  followed by one barrier (host/openflow.py).
Then a quiet pass: apply again on the converged switch (read OVSDB's replica, two
OpenFlow requests, nothing to write: what every agent pass costs). Prints absolute times
and ratios against the baseline; the goal (issue 13) is 20x at 1,000 ports and a quiet
pass of at most 0.2 s.

Needs root, iproute2 and Open vSwitch. A benchmark, not a test: it prints figures.

    sudo .venv/bin/python bench/switch.py [--ports N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from qosplane.compiler.enforcement.program import OVS_COOKIE_MATCH, ovs_port_cookie
from qosplane.host.ovs import OvsDaemons, RealSwitch
from qosplane.model.host_state import Meter, OvsQueue, PortQos
from qosplane.model.units import Bits, BitsPerSecond, Kilobits, KilobitsPerSecond

QUEUE = OvsQueue(BitsPerSecond(10_000_000), Bits(1_000_000))
METER = Meter(KilobitsPerSecond(3000), Kilobits(2400))
DSCP = 26
QUIET_PASSES = 5


def _ports(ns: str, count: int) -> list[str]:
    names = [f"tapb{i:05d}" for i in range(count)]
    lines = [f"link add {n} type veth peer name ethb{n[4:]}" for n in names]
    lines += [f"link set {n} up" for n in names]
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines), text=True, check=True)
    return names


def _baseline(switch: RealSwitch, ports: list[str]) -> None:
    db, mgmt = switch.daemons.db, switch.daemons.mgmt(switch.bridge)
    for port in ports:
        ofport = subprocess.run(
            ["ovs-vsctl", f"--db={db}", "get", "interface", port, "ofport"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(
            [
                "ovs-vsctl",
                f"--db={db}",
                "set",
                "port",
                port,
                "qos=@q",
                "--",
                "--id=@q",
                "create",
                "qos",
                "type=linux-htb",
                f"other-config:max-rate={QUEUE.max_rate_bits_per_s}",
                "queues:0=@q0",
                "--",
                "--id=@q0",
                "create",
                "queue",
                f"other-config:max-rate={QUEUE.max_rate_bits_per_s}",
                f"other-config:burst={QUEUE.burst_bits}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,  # the new rows' uuids
        )
        ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
        subprocess.run(
            [
                *ofctl,
                "add-meter",
                mgmt,
                f"meter={ofport},kbps,burst,band=type=drop,rate={METER.rate_kilobits_per_s},"
                f"burst_size={METER.burst_kilobits}",
            ],
            check=True,
        )
        cookie = ovs_port_cookie(port)
        for flow in (
            f"cookie={cookie:#x},priority=200,ip,in_port={ofport},"
            f"actions=meter:{ofport},set_field:{DSCP}->ip_dscp,NORMAL",
            f"cookie={cookie:#x},priority=190,in_port={ofport},actions=meter:{ofport},NORMAL",
        ):
            subprocess.run([*ofctl, "add-flow", mgmt, flow], check=True)


def _clear(switch: RealSwitch, ports: list[str]) -> None:
    """Back to plugged ports without QoS: the baseline's rows carry no owner tag, so they
    are removed here the way they were made."""
    db, mgmt = switch.daemons.db, switch.daemons.mgmt(switch.bridge)
    clears = [arg for port in ports for arg in ("--", "clear", "port", port, "qos")]
    subprocess.run(["ovs-vsctl", f"--db={db}", *clears], check=True)
    for table in ("qos", "queue"):
        subprocess.run(["ovs-vsctl", f"--db={db}", "--all", "destroy", table], check=True)
    ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
    subprocess.run([*ofctl, "del-flows", mgmt, OVS_COOKIE_MATCH], check=True)
    subprocess.run([*ofctl, "del-meters", mgmt], check=True)
    time.sleep(0.5)  # the agent's OVSDB replica hears of it


def bench(count: int) -> None:
    tag = uuid.uuid4().hex[:6]
    ns = f"qpbench-ovs-{tag}"
    state = Path(tempfile.mkdtemp(prefix="qpbench-ovs-"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    daemons = OvsDaemons(state, ns)
    try:
        daemons.ensure()
        switch = RealSwitch(daemons, "br-int", f"qpb{tag}-")
        ports = _ports(ns, count)
        start = time.perf_counter()
        for port in ports:
            switch.plug(port, network_id="bench-net", owner="instance-bench")
        plugged = time.perf_counter() - start
        desired = [PortQos(p, QUEUE, METER, DSCP) for p in ports]
        switch.apply(desired)  # OVS settles every port's first QoS once before timing
        _clear(switch, ports)

        start = time.perf_counter()
        _baseline(switch, ports)
        baseline = time.perf_counter() - start
        _clear(switch, ports)

        start = time.perf_counter()
        changes = switch.apply(desired).changes
        ours = time.perf_counter() - start
        seen = switch.observe()
        assert all(seen[p].qos == q for p, q in zip(ports, desired, strict=True))

        # Steady state: the OVSDB replica has heard of every row the apply wrote (its
        # update thread competes for the interpreter until then).
        time.sleep(1.0)
        quiets = []
        for _ in range(QUIET_PASSES):
            start = time.perf_counter()
            quiet_changes = switch.apply(desired).changes
            quiets.append(time.perf_counter() - start)
            assert quiet_changes == 0
        switch.close()
    finally:
        daemons.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(state, ignore_errors=True)
    print(f"OVS QoS on {count} ports (queue + meter + 2 flows each), userspace datapath:")
    print(f"  plugging the ports, one OVSDB transaction each : {plugged:8.3f} s")
    print(f"  baseline, one ovs-vsctl/ovs-ofctl per object   : {baseline:8.3f} s")
    print(
        f"  qosplane apply, {changes:5d} changes            : {ours:8.3f} s   "
        f"{baseline / ours:6.1f}x faster"
    )
    print(
        f"  qosplane quiet pass (apply, nothing to do)     : {statistics.median(quiets):8.3f} s"
        f"   median of {QUIET_PASSES}, slowest {max(quiets):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000)
    bench(parser.parse_args().ports)


if __name__ == "__main__":
    main()
