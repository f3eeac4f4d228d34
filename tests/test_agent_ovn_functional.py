"""The agent end to end with ports in OVN (--switch ovn), as root: a `qosplane serve`
started here, an agent confined to a throwaway host namespace running its own Open vSwitch
(userspace datapath) and its own OVN (NB and SB databases, ovn-northd, ovn-controller),
the same server as test_agent_functional (10 Mbit/s VIF flavor, the seed's bw-limiter and
DSCP 26 on its port): its Northbound rows compared with the ones `qosplane plan` compiles
for ML2/OVN, the meters ovn-controller made of them read back, the limits measured with
real traffic both ways and DSCP 26 on the wire; a row deleted or changed and a logical
port deleted behind the agent's back repaired within 5 s and reported.

Needs root, iproute2, Open vSwitch, OVN, ethtool, iperf3, tcpdump and ping; CI installs
them (scripts/host-packages), elsewhere the module skips saying which is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers
from qosplane.client.http import QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking
from qosplane.host.ovn import OvnDaemons, RealOvnSwitch
from qosplane.host.ovs import OvsDaemons
from qosplane.host.probe import probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.host_facts import HostFacts, NeutronBackend
from qosplane.model.host_state import Capabilities, Meter
from qosplane.model.instance import VifType
from qosplane.model.units import Kilobits, KilobitsPerSecond
from tests.conftest import require_root_and
from tests.hostkit import OVN_TOOLS, OVS_TOOLS, remove_everything
from tests.serving import QOSPLANE, serve_with_agent, wait_for
from tests.test_agent_functional import _make_server, _status

TOOLS = ("ip", "tc", "nft", "iperf3", "tcpdump", "ping", *OVS_TOOLS, *OVN_TOOLS)
EGRESS_BURST_KBIT = 2400


@dataclass
class OvnRig:
    client: QosplaneClient
    env: dict[str, str]
    host_ns: str
    drivers: HostDrivers
    switch: RealOvnSwitch
    caps: Capabilities
    server: dict[str, Any]

    def nbctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovn-nbctl", f"--db={self.switch.daemons.nb}", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def rows(self) -> list[dict[str, Any]]:
        """Every NB QoS row as JSON: direction, priority, match, bandwidth, action."""
        out = json.loads(
            self.nbctl(
                "--format=json",
                "--columns=direction,priority,match,bandwidth,action,external_ids",
                "list",
                "QoS",
            )
        )
        rows = []
        for values in out["data"]:
            row = dict(zip(out["headings"], values, strict=True))
            for key in ("bandwidth", "action", "external_ids"):
                row[key] = dict(row[key][1])
            rows.append(row)
        return sorted(rows, key=lambda r: r["direction"])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OvnRig]:
    require_root_and(*TOOLS)
    tag = uuid.uuid4().hex[:6]
    state = tmp_path_factory.mktemp("state")
    host_ns = f"qpn-host-{tag}"
    prefix = f"qpn{tag}-"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    ovs = OvsDaemons(state / "ovn-ovs", host_ns)
    daemons = OvnDaemons(state / "ovn", ovs, f"qosplane-{tag}")
    instances: RealInstances | None = None
    switch: RealOvnSwitch | None = None
    cgroups = RealCgroups(root=f"qosplane-ntest-{tag}")
    volumes = RealVolumes(state / "volumes")
    try:
        switch = RealOvnSwitch(daemons, "br-int", prefix)
        instances = RealInstances(prefix=prefix, host_netns=host_ns, switch=switch)
        drivers = HostDrivers(
            instances,
            RealTrafficControl(host_ns),
            RealDscpMarking(host_ns),
            cgroups,
            volumes,
            ovn=switch,
        )
        caps = replace(probe(), ovn_switch=True)
        facts = HostFacts(vif_type=VifType.BRIDGE, neutron_backend=NeutronBackend.OVN)
        with serve_with_agent(state, f"qpn-{tag}", drivers, caps, facts, 0.5) as hosted:
            server = _make_server(hosted.client, hosted.host, EGRESS_BURST_KBIT)
            yield OvnRig(hosted.client, hosted.env, host_ns, drivers, switch, caps, server)
        switch.remove_everything()
    finally:
        if instances is not None:
            remove_everything(instances, cgroups, volumes, host_ns)
        else:
            subprocess.run(["ip", "netns", "del", host_ns], check=False)
        if switch is not None:
            switch.close()
        daemons.stop()
        shutil.rmtree(state / "ovn", ignore_errors=True)
        shutil.rmtree(state / "ovn-ovs", ignore_errors=True)


def _rules(rig: OvnRig) -> dict[tuple[str, str], dict[str, Any]]:
    report = _status(rig.client, rig.server["id"])["report"]
    return {(r["kind"], r["direction"]): r for r in report["rules"]}


def test_the_agent_writes_the_rows_ml2_ovn_would(rig: OvnRig) -> None:
    status = _status(rig.client, rig.server["id"])
    assert status["report"]["status"] == "applied", status["report"]
    rules = _rules(rig)
    for direction in ("ingress", "egress"):
        rule = rules[("bandwidth", direction)]
        assert rule["mechanism"] == "OVN NB QoS row bandwidth, ovn-controller meter (drop band)"
        assert rule["polices"] is True
    assert rules[("dscp", "egress")]["mechanism"].startswith("OVN NB QoS row action dscp")
    port_id = rig.server["ports"][0]["id"]
    # The egress row is exactly the one `qosplane plan` compiles for ML2/OVN (the port's
    # policy: 3000 kbit/s, burst 2400, DSCP 26); to-lport holds the flavor's 10 Mbit/s,
    # which ML2/OVN would leave to libvirt.
    (planned,) = rig.server["plan"]["ovn"]["qos"]
    rows = rig.rows()
    egress = next(r for r in rows if r["direction"] == "from-lport")
    assert {k: egress[k] for k in ("direction", "priority", "match", "bandwidth", "action")} == {
        k: planned[k] for k in ("direction", "priority", "match", "bandwidth", "action")
    }
    assert egress["external_ids"]["neutron:port_id"] == port_id
    assert egress["bandwidth"] == {"rate": 3000, "burst": EGRESS_BURST_KBIT}
    ingress = next(r for r in rows if r["direction"] == "to-lport")
    assert ingress["match"] == f'outport == "{port_id}"'
    assert ingress["bandwidth"] == {"rate": 10000}
    # ovn-controller made a meter of each row, read back from br-int.
    observed = rig.switch.observe()[rig.server["ports"][0]["tap"]]
    assert observed.meters == (
        Meter(KilobitsPerSecond(10000), Kilobits(0)),
        Meter(KilobitsPerSecond(3000), Kilobits(EGRESS_BURST_KBIT)),
    )


def test_limits_hold_through_ovn_when_measured(rig: OvnRig) -> None:
    verdicts = verify_server(
        rig.client.server_plan(rig.server["id"]).desired,
        rig.caps,
        rig.drivers.instances,
        rig.drivers.cgroups,
        rig.drivers.volumes,
        5,
    )
    by_kind = {(v.kind, v.direction): v for v in verdicts}
    ingress, egress = by_kind[("bandwidth", "ingress")], by_kind[("bandwidth", "egress")]
    assert ingress.configured == "10000000 bit/s"
    assert ingress.passed, ingress.to_json()
    assert egress.configured == "3000000 bit/s"
    assert egress.passed, egress.to_json()
    assert by_kind[("dscp", "egress")].measured == 0x68  # ls_in_qos_mark: ip_dscp 26
    rig.client.record_measurement(rig.server["id"], verdicts)


def test_explain_shows_the_row_the_meter_and_the_measured_rate(rig: OvnRig) -> None:
    port_id = rig.server["ports"][0]["id"]
    out = subprocess.run(
        [str(QOSPLANE), "explain", rig.server["id"], "--json"],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    limits = {(x["kind"], x["direction"]): x for x in json.loads(out)["limits"]}
    egress = limits[("bandwidth", "egress")]
    assert egress["applied"]["held_as"] == (
        f"NB QoS from-lport 2002 'inport == \"{port_id}\"' rate=3000 burst=2400 dscp=26; "
        "ovn-controller meter kbps rate=3000 burst_size=2400"
    )
    assert egress["measured"]["passed"] is True  # recorded by the measurement test
    assert limits[("bandwidth", "ingress")]["applied"]["held_as"] == (
        f"NB QoS to-lport 2002 'outport == \"{port_id}\"' rate=10000; "
        "ovn-controller meter kbps rate=10000"
    )
    text = subprocess.run(
        [str(QOSPLANE), "explain", rig.server["id"]],
        env=rig.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "on host   NB QoS from-lport 2002" in text
    assert "measured  " in text


def test_ovn_drift_is_repaired_within_five_seconds_and_reported(rig: OvnRig) -> None:
    port_id = rig.server["ports"][0]["id"]
    switch = f"neutron-{rig.server['ports'][0]['network_id']}"
    before = rig.rows()
    egress = rig.nbctl("--bare", "--columns=_uuid", "find", "QoS", "direction=from-lport")
    # In one transaction, so one pass sees both: the ingress row goes, the egress changes.
    rig.nbctl("qos-del", switch, "to-lport", "--", "set", "QoS", egress, "bandwidth:rate=9000")
    took = wait_for(lambda: rig.rows() == before, 5, "the agent restores both rows")
    assert took < 5
    wait_for(
        lambda: (
            {
                d["aspect"]
                for d in (
                    _status(rig.client, rig.server["id"])["report"].get("last_drift") or {}
                ).get("drift", [])
            }
            >= {
                "to-instance OVN QoS row (to-lport bandwidth)",
                "from-instance OVN QoS row (from-lport bandwidth)",
            }
        ),
        5,
        "the repair is reported as drift, per aspect",
    )
    rig.nbctl("lsp-del", port_id)  # its rows stay: the NB does not delete them with it
    wait_for(
        lambda: port_id in rig.nbctl("lsp-list", switch),
        5,
        "a logical port deleted is added again",
    )
    wait_for(
        lambda: (
            "device"
            in {
                d["aspect"]
                for d in (
                    _status(rig.client, rig.server["id"])["report"].get("last_drift") or {}
                ).get("drift", [])
            }
        ),
        5,
        "its loss is reported as drift of the device",
    )
    assert rig.rows() == before


def test_deleting_the_server_leaves_no_port_row_or_switch(rig: OvnRig) -> None:
    rig.client.call("DELETE", f"/compute/v2.1/servers/{rig.server['id']}")
    wait_for(lambda: rig.switch.owners() == {}, 10, "the server's port and probe are unplugged")
    assert rig.rows() == []
    assert rig.nbctl("ls-list") == ""
