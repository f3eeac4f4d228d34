"""The seed (shared/seed/qos-nova-neutron-cinder.md) reproduced exactly.

tests/golden/seed/*.xml are the two `virsh dumpxml` outputs copied from the seed; the
compiled domains must carry the same QoS elements (cputune, iotune, bandwidth) on the same
devices.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from qosplane.compiler.upstream.plan import HostPlan
from tests.conftest import GOLDEN, load_case, plan_of

SEED_DRIVE_RESQUOTA = (
    "file=/var/lib/nova/instances/850724a4-029c-457b-a99d-3a18e8e413da/disk,format=qcow2,"
    "if=none,id=drive-virtio-disk0,cache=none,throttling.bps-read=1000000,"
    "throttling.bps-write=1024000"
)
SEED_DRIVE_NORMAL = (
    "file=/var/lib/nova/instances/30ad89ac-5906-49ca-8d52-3c6343c598f6/disk,format=qcow2,"
    "if=none,id=drive-virtio-disk0,cache=none"
)


def qos_elements(xml_text: str) -> dict[str, object]:
    """The QoS-bearing parts of a domain, keyed by device, as comparable plain data."""
    root = ET.fromstring(xml_text)
    out: dict[str, object] = {}
    cputune = root.find("cputune")
    out["cputune"] = (
        None if cputune is None else [(child.tag, (child.text or "").strip()) for child in cputune]
    )
    for disk in root.iter("disk"):
        target = disk.find("target")
        assert target is not None
        iotune = disk.find("iotune")
        out["disk " + target.get("dev", "")] = (
            None if iotune is None else [(c.tag, (c.text or "").strip()) for c in iotune]
        )
    for iface in root.iter("interface"):
        target = iface.find("target")
        assert target is not None
        bandwidth = iface.find("bandwidth")
        out["interface " + target.get("dev", "")] = (
            None if bandwidth is None else [(c.tag, sorted(c.attrib.items())) for c in bandwidth]
        )
        virtualport = iface.find("virtualport/parameters")
        assert virtualport is not None
        out["virtualport " + target.get("dev", "")] = virtualport.get("interfaceid")
        source = iface.find("source")
        assert source is not None
        out["source " + target.get("dev", "")] = (iface.get("type"), source.get("bridge"))
    return out


def test_resquota_domain_has_the_seeds_qos_elements(resquota_plan: HostPlan) -> None:
    seed = (GOLDEN / "seed" / "instance-00000041.xml").read_text()
    assert qos_elements(resquota_plan.domain_xml) == qos_elements(seed)


def test_normal_domain_has_the_seeds_qos_elements(normal_plan: HostPlan) -> None:
    seed = (GOLDEN / "seed" / "instance-00000042.xml").read_text()
    assert qos_elements(normal_plan.domain_xml) == qos_elements(seed)


def test_resquota_xml_keeps_nova_element_order(resquota_plan: HostPlan) -> None:
    xml = resquota_plan.domain_xml
    assert (
        "      <iotune>\n        <read_bytes_sec>1000000</read_bytes_sec>\n"
        "        <write_bytes_sec>1024000</write_bytes_sec>\n      </iotune>"
    ) in xml
    assert (
        "      <bandwidth>\n"
        "        <inbound average='32768' peak='65536' burst='131072'/>\n"
        "        <outbound average='32768' peak='65536' burst='131072'/>\n"
        "      </bandwidth>\n"
        "      <target dev='tapbb8410ad-a0'/>"
    ) in xml
    # <iotune> follows <target>; <bandwidth> precedes <target>, as in the seed.
    assert xml.index("<target dev='vda'") < xml.index("<iotune>")


def test_resquota_drive_string_is_the_seeds(resquota_plan: HostPlan) -> None:
    assert resquota_plan.qemu_drives == {"vda": SEED_DRIVE_RESQUOTA}


def test_normal_drive_string_is_the_seeds(normal_plan: HostPlan) -> None:
    assert normal_plan.qemu_drives == {"vda": SEED_DRIVE_NORMAL}


def test_resquota_cpu_shares_512_and_normal_1024(
    resquota_plan: HostPlan, normal_plan: HostPlan
) -> None:
    # Seed: cat .../machine-qemu..instance-00000041.scope/cpu.shares -> 512, ...42 -> 1024.
    assert resquota_plan.cgroup["v1"] == {"cpu.shares": "512"}
    assert normal_plan.cgroup["v1"] == {"cpu.shares": "1024"}


def test_resquota_tc_class_is_the_seeds(resquota_plan: HostPlan) -> None:
    cmds = resquota_plan.tc["tapbb8410ad-a0"]
    klass = next(c for c in cmds if c[:2] == ["tc", "class"])
    text = " ".join(klass)
    # Seed: class htb 1:1 ... rate 262144Kbit ceil 524288Kbit burst 128Mb, i.e. libvirt's
    # "rate 32768kbps ceil 65536kbps burst 131072kb"; quantum 32768*1024/8/1500 = 2796.
    assert "classid 1:1 htb rate 32768kbps ceil 65536kbps burst 131072kb quantum 2796" in text
    assert cmds[:2] == [
        ["tc", "qdisc", "del", "dev", "tapbb8410ad-a0", "root"],
        ["tc", "qdisc", "del", "dev", "tapbb8410ad-a0", "ingress"],
    ]
    assert [
        "tc",
        "qdisc",
        "add",
        "dev",
        "tapbb8410ad-a0",
        "parent",
        "1:1",
        "handle",
        "2:",
        "sfq",
        "perturb",
        "10",
    ] in cmds
    assert set(resquota_plan.tc) == {"tapbb8410ad-a0", "tapa1e966cd-47", "tape0bb2633-17"}


def test_resquota_outbound_police_is_planned_but_lost_to_ovs(resquota_plan: HostPlan) -> None:
    police = [c for c in resquota_plan.tc["tapbb8410ad-a0"] if "police" in c]
    assert police == [
        [
            "tc",
            "filter",
            "add",
            "dev",
            "tapbb8410ad-a0",
            "parent",
            "ffff:",
            "protocol",
            "all",
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "police",
            "rate",
            "32768kbps",
            "burst",
            "131072kb",
            "mtu",
            "64kb",
            "drop",
            "flowid",
            ":1",
        ]
    ]
    egress = next(
        e
        for e in resquota_plan.effective
        if e.device == "tapbb8410ad-a0" and e.direction == "egress"
    )
    assert egress.effective() is None
    assert any("OVS deletes its ingress qdisc" in loss for loss in egress.losses)
    assert "police_deleted_by_ovs" in {w.code for w in resquota_plan.warnings}


def test_normal_plan_has_no_network_artifacts(normal_plan: HostPlan) -> None:
    assert normal_plan.tc == {}
    assert normal_plan.ovs == []
    assert normal_plan.errors == []


def test_bw_limiter_sets_policing_3000_300_and_tc_burst_38400(neutron_plan: HostPlan) -> None:
    assert [
        "ovs-vsctl",
        "set",
        "Interface",
        "tap679563b6-d1",
        "ingress_policing_rate=3000",
        "ingress_policing_burst=300",
    ] in neutron_plan.ovs
    egress = next(
        e
        for e in neutron_plan.effective
        if e.device == "tap679563b6-d1" and e.direction == "egress" and e.kind == "bandwidth"
    )
    holding = egress.effective()
    assert holding is not None
    # Seed: tc filter ... police rate 3000Kbit burst 38400b
    assert holding.limit == {"rate_bits_per_s": 3_000_000, "burst_bytes": 38400}
    assert holding.mechanism == "police"


def test_dscp_26_becomes_tos_104(neutron_plan: HostPlan) -> None:
    flows = [c for c in neutron_plan.ovs if c[:2] == ["ovs-ofctl", "add-flow"]]
    assert len(flows) == 1
    flow = flows[0][3]
    # Seed: priority=65535,reg2=0,in_port=25 actions=mod_nw_tos:104,load:0x37->NXM_NX_REG2[0..5],resubmit(,0)
    assert "table=0,priority=65535,reg2=0,in_port=tap68fe8005-c4" in flow
    assert flow.endswith("actions=mod_nw_tos:104,load:55->NXM_NX_REG2[0..5],resubmit(,0)")
    dscp = next(e for e in neutron_plan.effective if e.kind == "dscp")
    assert dscp.effective() is not None
    assert dscp.effective().limit == {"dscp": 26, "tos": 0x68}  # type: ignore[union-attr]


def test_cinder_read_iops_per_gb_on_10gb_volume() -> None:
    plan = plan_of(load_case("cinder-per-gb.yaml"))
    assert plan.qemu_drives["vdb"].endswith(",throttling.iops-read=100")
    assert "<read_iops_sec>100</read_iops_sec>" in plan.domain_xml
    # The flavor has no disk quota, so the root disk stays unthrottled.
    assert "throttling" not in plan.qemu_drives["vda"]
