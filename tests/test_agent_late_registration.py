"""A server created before its host's agent ever ran is shaped once the agent registers.

The user's path from issue 9: `qosplane serve` without a local agent, `server create` with a
flavor that limits what leaves the instance, then the agent started. The first plan was
compiled against the default host facts (the seed's Open vSwitch host, where OVS deletes
libvirt's police, so nothing holds the outbound limit); the agent's registration brings this
host's facts, the service layer recompiles the host's plans, and the agent shapes the
outbound direction within 5 s. Real namespaces, tc and an ifb, as root.

Needs root, iproute2 and nftables; CI installs them (scripts/host-packages), elsewhere the
module skips saying which is missing.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from qosplane.agent.loop import Agent
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_facts import HostFacts
from qosplane.model.instance import VifType
from tests.conftest import require_root_and
from tests.hostkit import remove_everything
from tests.serving import running_serve, wait_for

TEN_MBIT_KB_PER_S = "1250"  # libvirt's vif_*_average unit: kilobytes/s


def _egress(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's effective outbound bandwidth limit of the server's one tap."""
    (limit,) = [
        e for e in plan["effective"] if e["device"].startswith("tap") and e["direction"] == "egress"
    ]
    assert isinstance(limit, dict)
    return limit


def _server(client: QosplaneClient) -> str:
    nova = "/compute/v2.1"
    flavor = client.call(
        "POST", f"{nova}/flavors", {"flavor": {"name": "m1.out10", "ram": 512, "vcpus": 1}}
    )["flavor"]["id"]
    client.call(
        "POST",
        f"{nova}/flavors/{flavor}/os-extra_specs",
        {"extra_specs": {"quota:vif_outbound_average": TEN_MBIT_KB_PER_S}},
    )
    net = client.call("POST", "/networking/v2.0/networks", {"network": {"name": "late"}})
    net_id = net["network"]["id"]
    client.call(
        "POST",
        "/networking/v2.0/subnets",
        {"subnet": {"network_id": net_id, "cidr": "10.203.0.0/24", "ip_version": 4}},
    )
    server = client.call(
        "POST",
        f"{nova}/servers",
        {"server": {"name": "vm-late", "flavorRef": flavor, "networks": [{"uuid": net_id}]}},
    )["server"]
    server_id: str = server["id"]
    return server_id


def _ifb_rate(host_ns: str, ifb: str) -> str:
    shown = subprocess.run(
        ["tc", "-n", host_ns, "class", "show", "dev", ifb],
        capture_output=True,
        text=True,
        check=False,
    )
    return shown.stdout


def test_a_server_created_before_its_agent_is_shaped_once_the_agent_registers(
    tmp_path: Path,
) -> None:
    require_root_and("ip", "tc", "nft")
    tag = uuid.uuid4().hex[:6]
    host_ns = f"qpl-host-{tag}"
    prefix = f"qpl{tag}-"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    instances = RealInstances(prefix=prefix, host_netns=host_ns)
    cgroups = RealCgroups(root=f"qosplane-late-{tag}")
    volumes = RealVolumes(tmp_path / "volumes")
    drivers = HostDrivers(
        instances, RealTrafficControl(host_ns), RealDscpMarking(host_ns), cgroups, volumes
    )
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        with running_serve(tmp_path) as endpoint:
            admin = json.loads((tmp_path / "admin.json").read_text())
            client = QosplaneClient(Credentials(endpoint, "admin", admin["password"], "admin"))
            server_id = _server(client)
            before = client.server_plan(server_id).to_json()
            # serve registers its own host (named like the machine) with the default facts
            local_host = before["server"]["host"]
            # Compiled for the default (Open vSwitch) host: nothing holds the outbound limit.
            assert _egress(before["plan"])["enforced_by"] is None, _egress(before["plan"])

            agent = Agent(
                client,
                local_host,
                Reconciler(drivers, probe()),
                facts=HostFacts(vif_type=VifType.HYBRID),
                drift_check_s=0.5,
            )
            agent.register()
            registered_at = time.monotonic()
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
            thread.start()

            after = client.server_plan(server_id).to_json()
            assert after["plan"]["revision"] > before["plan"]["revision"]
            assert _egress(after["plan"])["enforced_by"] is not None, _egress(after["plan"])
            tap = after["server"]["ports"][0]["tap"]
            ifb = "ifb" + tap[3:]
            wait_for(
                lambda: "rate 10Mbit" in _ifb_rate(host_ns, ifb),
                5 - (time.monotonic() - registered_at),
                f"the outbound 10 Mbit/s shaped on {ifb} within 5 s of the agent registering",
            )
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        remove_everything(instances, cgroups, volumes, host_ns)
