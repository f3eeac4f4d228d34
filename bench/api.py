"""API throughput and latency on loopback, against a bare endpoint measured in the same run.

For `port show`, `qos policy create` and `server create`, on SQLite and (if reachable) on
PostgreSQL: requests per second and p50/p99 latency from a closed-loop load generator with a
few concurrent keep-alive clients, each request bounded in count. The baseline is a bare
Starlette endpoint returning a constant JSON body under the same uvicorn settings. A
benchmark, not a test: it prints figures and exits 0.

    .venv/bin/python bench/api.py [--requests N] [--clients C]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from qosplane.store.database import downgrade, make_engine

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("QOSPLANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def hello(request):
    return JSONResponse({"port": {"id": "x", "name": ""}})
uvicorn.run(Starlette(routes=[Route("/bare", hello)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError("server did not start")


def load(
    make_request: Callable[[httpx.Client, int], httpx.Response], total: int, clients: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // clients

    def worker(offset: int) -> None:
        mine = []
        with httpx.Client(timeout=30) as client:
            for i in range(per_client):
                t0 = time.perf_counter()
                r = make_request(client, offset * per_client + i)
                mine.append(time.perf_counter() - t0)
                if r.status_code >= 400:
                    raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies


def report(label: str, elapsed: float, latencies: list[float], base_rps: float | None) -> float:
    rps = len(latencies) / elapsed
    q = statistics.quantiles(latencies, n=100)
    ratio = f"  {rps / base_rps:5.2f}x bare" if base_rps else ""
    print(
        f"{label:38s} {rps:8.0f} req/s  p50 {q[49] * 1000:7.2f} ms  p99 {q[98] * 1000:7.2f} ms{ratio}"
    )
    return rps


def bench_qosplane(db: str | None, total: int, clients: int, base_rps: float) -> None:
    state = tempfile.mkdtemp(prefix="qosplane-bench-")
    port = free_port()
    cmd = [
        str(ROOT / ".venv" / "bin" / "qosplane"),
        "serve",
        # The API alone: a local agent would build an instance per created server, leave
        # them behind, and put its work into the server-create figure.
        "--no-agent",
        "--state-dir",
        state,
        "--listen",
        f"127.0.0.1:{port}",
    ]
    if db:
        cmd += ["--db", db]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_up(root + "/identity/v3", proc)
        password = json.loads(Path(state, "admin.json").read_text())["password"]
        r = httpx.post(
            root + "/identity/v3/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {"user": {"name": "admin", "password": password}},
                    },
                    "scope": {"project": {"name": "admin"}},
                }
            },
        )
        h = {"X-Auth-Token": r.headers["X-Subject-Token"]}
        nova = {**h, "OpenStack-API-Version": "compute 2.96"}
        net = httpx.post(
            root + "/networking/v2.0/networks", headers=h, json={"network": {"name": "bench"}}
        ).json()["network"]["id"]
        httpx.post(
            root + "/networking/v2.0/subnets",
            headers=h,
            json={"subnet": {"network_id": net, "cidr": "10.128.0.0/16", "ip_version": 4}},
        )
        flavor = httpx.post(
            root + "/compute/v2.1/flavors",
            headers=nova,
            json={"flavor": {"name": "bench", "ram": 512, "vcpus": 1, "disk": 1}},
        ).json()["flavor"]["id"]
        httpx.post(
            root + f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
            headers=h,
            json={"extra_specs": {"quota:cpu_shares": "512", "quota:vif_inbound_average": "1250"}},
        )
        server = httpx.post(
            root + "/compute/v2.1/servers",
            headers=nova,
            json={"server": {"name": "probe", "flavorRef": flavor, "networks": [{"uuid": net}]}},
        ).json()["server"]["id"]
        port_id = httpx.get(root + f"/networking/v2.0/ports?device_id={server}", headers=h).json()[
            "ports"
        ][0]["id"]
        label = "postgresql" if db else "sqlite"
        elapsed, lat = load(
            lambda c, i: c.get(f"{root}/networking/v2.0/ports/{port_id}", headers=h), total, clients
        )
        report(f"port show ({label})", elapsed, lat, base_rps)
        elapsed, lat = load(
            lambda c, i: c.post(
                f"{root}/networking/v2.0/qos/policies",
                headers=h,
                json={"policy": {"name": f"p{i}"}},
            ),
            total,
            clients,
        )
        report(f"qos policy create ({label})", elapsed, lat, base_rps)
        n = max(clients, total // 4)
        elapsed, lat = load(
            lambda c, i: c.post(
                f"{root}/compute/v2.1/servers",
                headers=nova,
                json={
                    "server": {"name": f"vm{i}", "flavorRef": flavor, "networks": [{"uuid": net}]}
                },
            ),
            n,
            clients,
        )
        report(f"server create + plan ({label})", elapsed, lat, base_rps)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(state, ignore_errors=True)


def pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001 - any failure means: skip PostgreSQL, and say so
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        wait_up(f"http://127.0.0.1:{port}/bare", bare)
        elapsed, lat = load(
            lambda c, i: c.get(f"http://127.0.0.1:{port}/bare"), args.requests, args.clients
        )
        base_rps = report("bare Starlette endpoint (baseline)", elapsed, lat, None)
    finally:
        bare.terminate()
        bare.wait(timeout=10)
    bench_qosplane(None, args.requests, args.clients, base_rps)
    if pg_reachable():
        # Start from an empty qosplane schema: remove only qosplane's own tables.
        engine = make_engine(PG_URL)
        downgrade(engine)
        engine.dispose()
        bench_qosplane(PG_URL, args.requests, args.clients, base_rps)
    else:
        print(f"PostgreSQL at {PG_URL} not reachable: its figures are skipped")


if __name__ == "__main__":
    main()
