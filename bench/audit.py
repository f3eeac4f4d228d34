"""How long `qosplane audit --os-cloud` takes on a cloud of 1,000 servers (issue 14: "audit
on a store with 1,000 servers finishes in seconds"), read through openstacksdk exactly as a
real cloud, against the same audit of 100 servers measured in the same run.

A `qosplane serve --no-agent` in a temporary state directory stands in for the cloud: one
flavor with the seed's quotas, one network with a QoS policy, N servers with a port each.
The audit is timed from the listing to the table (Nova's pages, four servers read at once,
each through the compiler). The ratio t(1,000)/t(100) is 10 when the audit scales
linearly. The serve and its state are removed at the end.

    .venv/bin/python bench/audit.py [--servers 1000] [--baseline 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openstack

from qosplane.cloud.audit import audit_of
from qosplane.cloud.reader import list_servers, read_servers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.serving import openrc_env, running_serve  # noqa: E402


def _connect(state: Path) -> openstack.connection.Connection:
    env = openrc_env(state)
    return openstack.connect(
        auth_url=env["OS_AUTH_URL"],
        username="admin",
        password=env["OS_PASSWORD"],
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
    )


def _populate(conn: openstack.connection.Connection, count: int) -> float:
    flavor = conn.compute.post(
        "/flavors", json={"flavor": {"name": "m1.resquota", "ram": 1024, "vcpus": 1, "disk": 20}}
    ).json()["flavor"]
    conn.compute.post(
        f"/flavors/{flavor['id']}/os-extra_specs",
        json={"extra_specs": {"quota:cpu_shares": "512", "quota:vif_inbound_average": "32768"}},
    )
    image = conn.image.post(
        "/images", json={"name": "cirros", "disk_format": "raw", "container_format": "bare"}
    ).json()
    conn.image.put(f"/images/{image['id']}/file", data=b"",
                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    policy = conn.network.post("/qos/policies", json={"policy": {"name": "limit"}}).json()
    conn.network.post(
        f"/qos/policies/{policy['policy']['id']}/bandwidth_limit_rules",
        json={"bandwidth_limit_rule": {"max_kbps": 3000, "max_burst_kbps": 300}},
    )
    net = conn.network.post(
        "/networks", json={"network": {"name": "net1", "qos_policy_id": policy["policy"]["id"]}}
    ).json()["network"]
    conn.network.post("/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                   "cidr": "10.0.0.0/16"}})  # fmt: skip

    return _create(conn, flavor["id"], image["id"], net["id"], [f"vm{i:04d}" for i in range(count)])


def _create(
    conn: openstack.connection.Connection, flavor: str, image: str, net: str, names: list[str]
) -> float:
    """`names` servers with a port each on `net`, eight requests at a time: seconds taken."""

    def create(name: str) -> None:
        body = {"server": {"name": name, "flavorRef": flavor, "imageRef": image,
                           "networks": [{"uuid": net}]}}  # fmt: skip
        answer = conn.compute.post("/servers", json=body)
        if answer.status_code >= 400:
            raise RuntimeError(answer.text)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, names))
    return time.monotonic() - start


def _audit(conn: openstack.connection.Connection) -> tuple[float, int, int]:
    start = time.monotonic()
    servers, version = list_servers(conn, all_projects=True)
    view = audit_of(read_servers(conn, servers, version))
    return time.monotonic() - start, view["servers"], len(view["findings"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=100)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="qpbench-audit-"))
    try:
        with running_serve(state, timeout_s=60):
            conn = _connect(state)
            made = _populate(conn, args.baseline)
            base_s, base_n, findings = _audit(conn)
            made += _populate_more(conn, args.servers - args.baseline)
            full_s, full_n, _ = _audit(conn)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"created {full_n} servers in {made:.1f} s (setup, not measured)")
    print(f"audit of {base_n} servers: {base_s:.2f} s ({findings} kinds of finding)")
    print(f"audit of {full_n} servers: {full_s:.2f} s, {1000 * full_s / full_n:.1f} ms per server")
    print(f"ratio t({full_n})/t({base_n}): {full_s / base_s:.1f} (linear: {full_n / base_n:.0f})")
    return 0


def _populate_more(conn: openstack.connection.Connection, count: int) -> float:
    flavor = conn.compute.get("/flavors/detail").json()["flavors"][0]
    image = conn.image.get("/images").json()["images"][0]
    net = conn.network.get("/networks").json()["networks"][0]
    names = [f"vm-more{i:04d}" for i in range(count)]
    return _create(conn, flavor["id"], image["id"], net["id"], names)


if __name__ == "__main__":
    os.environ.pop("OS_CLOUD", None)
    sys.exit(main())
