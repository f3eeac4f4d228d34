"""`qosplane inspect` (issue 14, item 3), libvirt's layer: the plan's domain against what
a host really holds. On the seed's captured `virsh dumpxml` of vm_resquota (copied into
tests/data from ../shared/seed/qos-nova-neutron-cinder.md), with a Cinder spec changed
after attach, and on a real libvirtd's running domain re-tuned behind the plan's back.

The real case needs root, libvirtd and QEMU (CI installs them, scripts/host-packages)."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.cli.hostside import read_host_domain
from qosplane.host.hypervisor import RealHypervisor, find_qemu_pid
from qosplane.host.ovs import interface_policing_text
from qosplane.host.tc import RealTrafficControl
from qosplane.model.plan import HostPlan
from qosplane.verify.inspect import (
    HostDomain,
    declared_ovs_policing,
    inspect_domain,
    ovn_nb_qos_rows,
    ovs_interface_policing,
    render_inspect,
    tap_bandwidth,
)
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import drivers, own_ovs, server_of
from tests.test_host_libvirt import LIBVIRT, resquota_plan

SEED_XML = (Path(__file__).parent / "data" / "seed-vm_resquota-dumpxml.xml").read_text()


def _status(rows: list, device: str, key: str) -> tuple[str, int | None, int | None]:  # type: ignore[type-arg]
    """A limit's row in libvirt's layer (tc's and the cgroup's are looked at by name)."""
    kernel = ("tc on the tap", "cgroup files")
    (row,) = [r for r in rows if (r.device, r.key) == (device, key) and r.layer not in kernel]
    return row.status, row.declared, row.host


def test_the_seeds_own_host_holds_what_the_seeds_plan_declares() -> None:
    """The plan compiled from the seed's case, against the seed's dumpxml: every limit of
    m1.resquota (shares, both disk rates, both ways of the three taps) is there."""
    plan = plan_of(load_case("m1-resquota.yaml"))
    rows = inspect_domain(plan.domain_xml, HostDomain.from_xml(SEED_XML))
    assert rows
    assert {r.status for r in rows} == {"holds"}, [r for r in rows if r.status != "holds"]
    assert _status(rows, "cpu", "cpu_shares") == ("holds", 512, 512)
    assert _status(rows, "vda", "read_bytes_sec") == ("holds", 1000000, 1000000)
    assert _status(rows, "tapbb8410ad-a0", "inbound.average") == ("holds", 32768, 32768)
    assert len({r.device for r in rows if r.layer == "libvirt bandwidth"}) == 3


def test_a_spec_changed_after_attach_is_a_difference_and_a_lost_one_is_missing() -> None:
    """The seed's surprise: Cinder's spec says 100 read IOPS now; QEMU still holds the 50 it
    was attached with. And a <bandwidth> gone from a tap is missing."""
    body = load_case("cinder-per-gb.yaml")
    plan = plan_of(body)
    assert "<read_iops_sec>100</read_iops_sec>" in plan.domain_xml
    held = HostDomain.from_xml(plan.domain_xml.replace("<read_iops_sec>100<", "<read_iops_sec>50<"))
    rows = inspect_domain(plan.domain_xml, held)
    assert _status(rows, "vdb", "read_iops_sec") == ("differs", 100, 50)
    text = render_inspect(plan.instance_name, rows)
    assert "DIFFERS   declared 100, host 50" in text
    flavor = plan_of(load_case("m1-resquota.yaml"))
    stripped = HostDomain.from_xml(SEED_XML)
    no_bandwidth = HostDomain(
        stripped.xml, stripped.iotune, {tap: {} for tap in stripped.interfaces}, stripped.scheduler
    )
    rows = inspect_domain(flavor.domain_xml, no_bandwidth)
    assert _status(rows, "tapbb8410ad-a0", "outbound.average") == ("missing", 32768, None)
    # Nothing runs at all: every declared limit is missing.
    assert {r.status for r in inspect_domain(flavor.domain_xml, None)} == {"missing"}


@pytest.fixture
def libvirt_host() -> HostDrivers:  # type: ignore[misc]
    with drivers("real", libvirt=True) as d:
        yield d


def hypervisor_netns(host: HostDrivers) -> str | None:
    """The namespace the real drivers' taps live in."""
    return getattr(host.instances, "host_netns", None)


def test_a_running_domain_retuned_behind_the_plans_back_is_reported(
    libvirt_host: HostDrivers,
) -> None:
    import libvirt

    plan = HostPlan.from_json(resquota_plan())
    server = server_of(resquota_plan(), f"server-{uuid.uuid4().hex[:4]}")
    _, result = Reconciler(libvirt_host, LIBVIRT).converge([server])
    assert result.errors == {}, result.errors
    hypervisor = libvirt_host.hypervisor
    assert isinstance(hypervisor, RealHypervisor)
    name = plan.instance_name
    held = read_host_domain(hypervisor, name, "", hypervisor_netns(libvirt_host))
    assert held is not None
    # Every layer was read but OVS, which this host does not run: said so, not skipped.
    assert held.not_read == ("Open vSwitch Interface: no ovsdb-server here (--ovs-db names one)",)
    rows = inspect_domain(plan.domain_xml, held)
    assert _status(rows, "vda", "read_bytes_sec") == ("holds", 1000000, 1000000)
    assert _status(rows, "cpu", "cpu_shares") == ("holds", 512, 512)
    (in_files,) = [r for r in rows if r.layer == "cgroup files"]
    assert (in_files.key, in_files.status, in_files.host) == ("cpu_shares", "holds", 512)
    # This host's domain has no NICs (firmware only): libvirt holds no <bandwidth>.
    assert _status(rows, "tapbb8410ad-a0", "inbound.average") == ("missing", 32768, None)
    dom = hypervisor._conn().lookupByName(name)  # virsh blkdeviotune / schedinfo --live
    # libvirt sends QEMU the whole bps group at once: the write rate is given again.
    tune = {"read_bytes_sec": 500, "write_bytes_sec": 1024000}
    dom.setBlockIoTune("vda", tune, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    dom.setSchedulerParametersFlags({"cpu_shares": 2048}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    rows = inspect_domain(
        plan.domain_xml, read_host_domain(hypervisor, name, "", hypervisor_netns(libvirt_host))
    )
    (in_files,) = [r for r in rows if r.layer == "cgroup files"]
    assert (in_files.status, in_files.declared, in_files.host) == ("differs", 512, 2048)
    assert _status(rows, "vda", "read_bytes_sec") == ("differs", 1000000, 500)
    assert _status(rows, "vda", "write_bytes_sec") == ("holds", 1024000, 1024000)
    assert _status(rows, "cpu", "cpu_shares") == ("differs", 512, 2048)
    assert hypervisor.read_domain("instance-nowhere") is None
    assert read_host_domain(hypervisor, "instance-nowhere", "", None) is None


# --- tc on the taps: what the kernel holds under libvirt's <bandwidth> ----------------------

# The seed's captured tc output (qos-nova-neutron-cinder.md, "tc outputs"): the htb class
# libvirt made on vm_resquota's tap, and the police on the Neutron port's tap that Neutron's
# OVS agent made from ingress_policing_rate=3000, ingress_policing_burst=300.
SEED_TAP = "tapbb8410ad-a0"
SEED_CLASS = (
    "class htb 1:1 root leaf 2: prio 0 rate 262144Kbit ceil 524288Kbit burst 128Mb cburst 1572b\n"
)
SEED_POLICE = (
    "filter parent ffff: protocol all pref 49 basic\n"
    "filter parent ffff: protocol all pref 49 basic handle 0x1\n"
    " police 0xd rate 3000Kbit burst 38400b mtu 64Kb action drop overhead 0b\n"
    "ref 1 bind 1\n"
)


def test_the_seeds_tc_outputs_read_as_libvirts_bandwidth() -> None:
    """average 32768 KB/s = 262144 Kbit, peak 65536 KB/s = 524288 Kbit, burst 131072 KB =
    128 Mb, as the seed's own notes convert them; the police in KB/s and KiB."""
    assert tap_bandwidth(SEED_CLASS, "") == {
        "inbound.average": 32768,
        "inbound.peak": 65536,
        "inbound.burst": 131072,
    }
    assert tap_bandwidth("", SEED_POLICE) == {"outbound.average": 375, "outbound.burst": 37}
    assert tap_bandwidth("", "") == {}


def test_a_police_libvirt_reports_and_tc_lacks_is_missing_in_the_tc_layer() -> None:
    """The seed's surprise on an OVS port: libvirt still reports the outbound <bandwidth>
    (domiftune), but its police is gone from the tap; inspect names the layer that lost it."""
    plan = plan_of(load_case("m1-resquota.yaml"))
    seed = HostDomain.from_xml(SEED_XML)
    taps = dict.fromkeys(seed.interfaces, tap_bandwidth(SEED_CLASS, ""))
    rows = inspect_domain(plan.domain_xml, replace(seed, tc=taps))
    assert _status(rows, SEED_TAP, "outbound.average") == ("holds", 32768, 32768)  # libvirt
    tc_rows = {(r.device, r.key): r for r in rows if r.layer == "tc on the tap"}
    assert (
        tc_rows[SEED_TAP, "inbound.average"].status,
        tc_rows[SEED_TAP, "inbound.peak"].host,
    ) == (
        "holds",
        65536,
    )
    lost = tc_rows[SEED_TAP, "outbound.average"]
    assert (lost.status, lost.declared, lost.host) == ("missing", 32768, None)
    assert "tc on the tap" in render_inspect(plan.instance_name, rows)
    # A captured dumpxml alone says nothing about tc: no tc rows at all.
    assert not [r for r in inspect_domain(plan.domain_xml, seed) if r.layer == "tc on the tap"]


def test_tc_on_a_real_tap_is_read_as_libvirt_would_have_written_it() -> None:
    """libvirt's own commands for vm_resquota's inbound (virNetDevBandwidthSet, without its
    sfq leaf: this kernel has none) on a device of the seed's tap name in a throwaway
    namespace, read back through tc; the outbound police (this kernel has no act_police) is
    then missing from the tap, as on the seed's OVS port."""
    require_root_and("ip", "tc")
    ns = f"qptest-insp-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", SEED_TAP, "type", "veth", "peer", "name", "ethseed"],
            check=True,
        )
        for line in (
            f"qdisc add dev {SEED_TAP} root handle 1: htb default 1",
            f"class add dev {SEED_TAP} parent 1: classid 1:1 htb rate 32768kbps ceil 65536kbps "
            "burst 131072kb quantum 21870",
        ):
            subprocess.run(["tc", "-n", ns, *line.split()], check=True)
        held = tap_bandwidth(*RealTrafficControl(ns).bandwidth_texts([SEED_TAP])[SEED_TAP])
        assert held == {"inbound.average": 32768, "inbound.peak": 65536, "inbound.burst": 131072}
        assert RealTrafficControl(ns).bandwidth_texts(["tapnothere-00"]) == {
            "tapnothere-00": ("", "")
        }
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    plan = plan_of(load_case("m1-resquota.yaml"))
    seed = HostDomain.from_xml(SEED_XML)
    rows = inspect_domain(plan.domain_xml, replace(seed, tc={SEED_TAP: held}))
    tc_rows = {(r.device, r.key): r.status for r in rows if r.layer == "tc on the tap"}
    assert tc_rows[SEED_TAP, "inbound.average"] == "holds"
    assert tc_rows[SEED_TAP, "outbound.average"] == "missing"


# --- Open vSwitch's Interface policing ----------------------------------------------------

SEED_OVS = (Path(__file__).parent / "data" / "seed-ovs-list-interface.txt").read_text()
NEUTRON_TAP = "tap679563b6-d1"


def test_the_seeds_ovs_interface_reads_as_neutrons_policing() -> None:
    """The seed's `ovs-vsctl list interface` of the bw-limiter port (copied into tests/data
    from ../shared/seed/qos-nova-neutron-cinder.md): what Neutron's OVS agent wrote."""
    assert ovs_interface_policing(SEED_OVS) == {
        NEUTRON_TAP: {"ingress_policing_rate": 3000, "ingress_policing_burst": 300}
    }


def test_the_plans_ovs_policing_is_held_and_a_changed_rate_differs() -> None:
    plan = plan_of(load_case("vm-neutron-qos.yaml"))
    declared = declared_ovs_policing(plan.ovs)
    assert declared[NEUTRON_TAP] == {"ingress_policing_rate": 3000, "ingress_policing_burst": 300}
    host = replace(HostDomain.from_xml(plan.domain_xml), ovs=ovs_interface_policing(SEED_OVS))
    rows = [
        r for r in inspect_domain(plan.domain_xml, host, plan.ovs) if r.layer == "OVS Interface"
    ]
    assert {(r.device, r.key, r.status) for r in rows if r.device == NEUTRON_TAP} == {
        (NEUTRON_TAP, "ingress_policing_rate", "holds"),
        (NEUTRON_TAP, "ingress_policing_burst", "holds"),
    }
    changed = SEED_OVS.replace("ingress_policing_rate: 3000", "ingress_policing_rate: 1000")
    host = replace(host, ovs=ovs_interface_policing(changed))
    rows = inspect_domain(plan.domain_xml, host, plan.ovs)
    (rate,) = [r for r in rows if r.layer == "OVS Interface" and r.key == "ingress_policing_rate"]
    assert (rate.status, rate.declared, rate.host) == ("differs", 3000, 1000)


NB_SWITCHES = (Path(__file__).parent / "data" / "ovn-nb-list-logical-switch.json").read_text()
NB_QOS = (Path(__file__).parent / "data" / "ovn-nb-list-qos.json").read_text()


def test_the_northbound_rows_ml2_ovn_writes_hold_and_a_changed_one_differs() -> None:
    """tests/data/ovn-nb-*.json: `ovn-nbctl --format=json list` of a Northbound holding
    the OVN example's geneve port as ML2/OVN writes it (captured from qosplane's own OVN,
    OVN 23.03)."""
    plan = plan_of(load_case("vm-neutron-qos-ovn.yaml"))
    held = ovn_nb_qos_rows(NB_SWITCHES, NB_QOS)
    assert set(held) == set(plan.ovn_qos)
    host = replace(HostDomain.from_xml(plan.domain_xml), ovn=tuple(held))
    rows = inspect_domain(plan.domain_xml, host, (), plan.ovn_qos)
    ovn = [r for r in rows if r.layer == "OVN NB QoS"]
    assert {(r.device[:10], r.key, r.status) for r in ovn} == {
        ("from-lport", "rate", "holds"),
        ("from-lport", "burst", "holds"),
        ("from-lport", "dscp", "holds"),
        ("to-lport 0", "rate", "holds"),
    }
    # An operator's `ovn-nbctl set qos ... bandwidth:rate=9000` differs; a deleted row is
    # missing, every value of it.
    changed = ovn_nb_qos_rows(NB_SWITCHES, NB_QOS.replace('["rate",10000]', '["rate",9000]'))
    rows = inspect_domain(plan.domain_xml, replace(host, ovn=tuple(changed)), (), plan.ovn_qos)
    (rate,) = [
        r
        for r in rows
        if r.layer == "OVN NB QoS" and r.device.startswith("from") and r.key == "rate"
    ]
    assert (rate.status, rate.declared, rate.host) == ("differs", 10000, 9000)
    egress_only = tuple(r for r in held if r.direction == "from-lport")
    rows = inspect_domain(plan.domain_xml, replace(host, ovn=egress_only), (), plan.ovn_qos)
    assert [r.status for r in rows if r.layer == "OVN NB QoS" and r.device.startswith("to")] == [
        "missing"
    ]
    # No Northbound read: no OVN rows at all, rather than every one missing.
    unread = HostDomain.from_xml(plan.domain_xml)
    rows = inspect_domain(plan.domain_xml, unread, (), plan.ovn_qos)
    assert not [r for r in rows if r.layer == "OVN NB QoS"]


def test_a_real_ovs_interface_is_read_as_neutron_wrote_it() -> None:
    """A port plugged into a real ovsdb-server in a throwaway namespace, policed with the
    command Neutron's OVS agent runs (ovs_lib.set_ingress_policing...), read back."""
    ns = f"qptest-insp-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with own_ovs(ns, f"qpi{uuid.uuid4().hex[:4]}-") as switch:
            subprocess.run(
                [
                    "ip",
                    "-n",
                    ns,
                    "link",
                    "add",
                    NEUTRON_TAP,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "ethn",
                ],
                check=True,
            )
            switch.plug(NEUTRON_TAP, network_id="net", owner="vm")
            db = switch.daemons.db
            subprocess.run(
                ["ovs-vsctl", f"--db={db}", "set", "Interface", NEUTRON_TAP,
                 "ingress_policing_rate=3000", "ingress_policing_burst=300"],
                check=True,
            )  # fmt: skip
            held = ovs_interface_policing(interface_policing_text(db))
            switch.unplug(NEUTRON_TAP)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert held[NEUTRON_TAP] == {"ingress_policing_rate": 3000, "ingress_policing_burst": 300}


def test_a_domain_whose_tc_holds_what_libvirt_wrote_holds_within_tcs_rounding() -> None:
    """libvirt's outbound police has no peak, so none is looked for; and tc hands back a
    burst a little off what was set (it keeps it as time at the rate)."""
    plan = plan_of(load_case("m1-resquota.yaml"))
    seed = HostDomain.from_xml(SEED_XML)
    police = SEED_POLICE.replace("rate 3000Kbit burst 38400b", "rate 262144Kbit burst 131070Kb")
    taps = dict.fromkeys(seed.interfaces, tap_bandwidth(SEED_CLASS, police))
    assert taps[SEED_TAP]["outbound.burst"] == 131070  # tc's Kb is KiB: 2 KiB short
    rows = [
        r
        for r in inspect_domain(plan.domain_xml, replace(seed, tc=taps))
        if r.layer == "tc on the tap"
    ]
    assert rows
    assert {r.status for r in rows} == {"holds"}, [r for r in rows if r.status != "holds"]
    assert "outbound.peak" not in {r.key for r in rows}


def test_the_qemu_process_of_a_domain_is_found_in_proc_by_its_name(tmp_path: Path) -> None:
    """libvirt names QEMU `-name guest=NAME,debug-threads=on`; a longer name that starts
    the same is another domain."""
    for pid, args in (
        ("101", ["/usr/bin/qemu-system-x86_64", "-name", "guest=instance-10,debug-threads=on"]),
        ("102", ["/usr/bin/qemu-system-x86_64", "-name", "guest=instance-1,debug-threads=on"]),
        ("self", ["bash"]),
    ):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    assert find_qemu_pid("instance-1", tmp_path) == 102
    assert find_qemu_pid("instance-10", tmp_path) == 101
    assert find_qemu_pid("instance-2", tmp_path) is None
