"""The capability probe: each primitive the agent may use, tried once in a throwaway
network namespace, the answers cached per kernel release.

Real compute hosts differ (this CI kernel has no sfq, fw or police; a distribution kernel
has them all), so the agent asks the kernel instead of assuming.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import uuid
from dataclasses import asdict, fields
from pathlib import Path

from qosplane.host.cgroups import CGROUP_V2, CPU_V1
from qosplane.host.errors import HostError
from qosplane.host.process import run
from qosplane.model.host_state import Capabilities


def _works(argv: list[str], input_text: str | None = None) -> bool:
    try:
        run(argv, input_text)
    except HostError:
        return False
    return True


def probe() -> Capabilities:
    ns = f"qpprobe-{uuid.uuid4().hex[:8]}"
    run(["ip", "netns", "add", ns])
    try:
        tc = ["tc", "-n", ns]
        ip = ["ip", "-n", ns]
        run([*ip, "link", "add", "pa", "type", "veth", "peer", "name", "pb"])

        def tc_ok(command: str) -> bool:
            return _works([*tc, *command.split()])

        match_all = "filter add dev pa parent ffff: protocol all u32 match u32 0 0"
        htb = tc_ok("qdisc add dev pa root handle 1: htb default 1")
        pfifo = (
            htb
            and tc_ok("class add dev pa parent 1: classid 1:1 htb rate 1mbit")
            and tc_ok("qdisc add dev pa parent 1:1 handle 2: pfifo")
        )
        sfq = tc_ok("qdisc add dev pb root sfq")
        ingress = tc_ok("qdisc add dev pa handle ffff: ingress")
        ifb = _works([*ip, "link", "add", "pi", "type", "ifb"])
        mirred = ingress and ifb and tc_ok(f"{match_all} action mirred egress redirect dev pi")
        police = ingress and tc_ok(f"{match_all} police rate 1mbit burst 10k drop")
        nft = _works(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            "table bridge probe {\n chain c {\n"
            "  type filter hook forward priority 0;\n"
            '  iifname "pa" ip dscp set 26\n }\n}\n',
        )
    finally:
        run(["ip", "netns", "del", ns])
    return Capabilities(
        htb=htb,
        pfifo=pfifo,
        ifb_mirred=mirred,
        tc_police=police,
        sfq=sfq,
        nft_bridge=nft,
        cgroup_v1_cpu=(CPU_V1 / "cpu.shares").exists() and os.access(CPU_V1, os.W_OK),
        cgroup_v2=V2_CONTROLLERS.exists(),
        cgroup_v2_cpu=V2_CONTROLLERS.exists() and "cpu" in V2_CONTROLLERS.read_text().split(),
        qemu_storage_daemon=all(shutil.which(t) for t in ("qemu-storage-daemon", "qemu-io")),
    )


V2_CONTROLLERS = CGROUP_V2 / "cgroup.controllers"


def cached_probe(cache: Path) -> Capabilities:
    """The probe's answer for this kernel, from `cache` when it was made on this release."""
    release = platform.release()
    try:
        data = json.loads(cache.read_text())
        known = set(data["capabilities"])
        # A cache written before a capability existed would read it as False: probe again.
        if data.get("kernel") == release and known == {f.name for f in fields(Capabilities)}:
            return Capabilities(**data["capabilities"])
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no cache yet, or an old format: probe again
    caps = probe()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"kernel": release, "capabilities": asdict(caps)}, indent=1))
    return caps
