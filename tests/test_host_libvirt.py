"""libvirt instances: the plan's domain adapted to this host (pure), the plan's CPU and
image-disk limits as libvirt parameters, and the same reconcile scenarios against the
fake hypervisor and a real libvirtd of the test's own (root; TCG or KVM): define and
start, stay quiet, repair a value changed behind the agent's back and a destroyed domain,
re-tune live, remove; the disk limit measured through the running QEMU."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from qosplane.agent.measurement import verify_server
from qosplane.agent.reconcile import HostDrivers, Reconciler, server_reports
from qosplane.compiler.enforcement.backends.libvirt_domain import (
    AGENT_CHANNEL,
    OWNER_NAMESPACE,
    DomainHost,
    GuestBoot,
    HostNic,
    domain_iotune,
    domain_shares,
    host_domain_xml,
)
from qosplane.compiler.enforcement.program import host_program
from qosplane.host.hypervisor import FakeHypervisor, RealHypervisor
from qosplane.model.host_state import Capabilities, DomainQos, Mechanism, Outcome
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import Verdict
from qosplane.model.units import Kibibytes
from qosplane.verify.drift import domain_drift
from tests.conftest import load_case, plan_of
from tests.hostkit import drivers, server_of

LIBVIRT = Capabilities(htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True, libvirt=True)
NAME = "instance-00000041"


def resquota_plan(**extra_specs: str) -> dict[str, Any]:
    body = copy.deepcopy(load_case("m1-resquota.yaml"))
    body["host"] = {**(body.get("host") or {}), "vif_type": "hybrid"}
    body["flavor"]["extra_specs"] = {**body["flavor"].get("extra_specs", {}), **extra_specs}
    return plan_of(body).to_json()


# --- pure ---------------------------------------------------------------------------------


def test_a_real_guest_boots_the_image_with_its_nics_on_this_hosts_bridges() -> None:
    """The plan's hybrid interface (Nova's qbr bridge, libvirt <bandwidth>) becomes a port
    of the host's network bridge without <bandwidth>, which this kernel cannot run; the
    kernel boots qosplane's image, and qemu-ga gets its channel."""
    plan_xml = str(resquota_plan()["domain_xml"])
    planned = ET.fromstring(plan_xml).find("devices/interface")
    assert planned is not None
    assert planned.find("bandwidth") is not None  # Nova would have written it
    tap = str(planned.find("target").get("dev"))  # type: ignore[union-attr]
    boot = GuestBoot("/img/vmlinuz", "/img/initrd.img", "console=ttyS0 qosplane.nic=x")
    host = DomainHost(
        "qemu",
        "/usr/bin/qemu-system-x86_64",
        Kibibytes(196608),
        {"vda": "/i/vda.raw"},
        "qosplane:t-",
        boot=boot,
        interfaces={tap: HostNic("brqnet1", "fa:16:3e:00:00:99", 1450)},
    )
    root = ET.fromstring(host_domain_xml(plan_xml, host))
    (nic,) = root.findall("devices/interface")
    assert nic.get("type") == "bridge"
    assert nic.find("source").get("bridge") == "brqnet1"  # type: ignore[union-attr]
    assert nic.find("target").get("dev") == tap  # type: ignore[union-attr]
    assert nic.find("mac").get("address") == "fa:16:3e:00:00:99"  # type: ignore[union-attr]
    assert nic.find("model").get("type") == "virtio"  # type: ignore[union-attr]
    assert nic.find("bandwidth") is None
    assert nic.find("mtu").get("size") == "1450"  # type: ignore[union-attr]  # the port's
    assert (root.findtext("os/kernel"), root.findtext("os/initrd")) == (boot.kernel, boot.initrd)
    assert root.findtext("os/cmdline") == boot.cmdline
    (channel,) = root.findall("devices/channel")
    assert channel.find("target").get("name") == AGENT_CHANNEL  # type: ignore[union-attr]
    assert root.findtext("cputune/shares") == "512"  # QoS kept as before
    # A NIC this host does not wire is left out, as without a guest.
    other = replace(host, interfaces={"tapother": HostNic("brqnet1", "fa:16:3e:00:00:99")})
    assert ET.fromstring(host_domain_xml(plan_xml, other)).find("devices/interface") is None


def test_the_plans_domain_is_adapted_to_this_host_and_keeps_its_qos() -> None:
    plan_xml = str(resquota_plan()["domain_xml"])
    host = DomainHost(
        "qemu",
        "/usr/bin/qemu-system-x86_64",
        Kibibytes(131072),
        {"vda": "/i/vda.raw"},
        "qosplane:t-",
    )
    root = ET.fromstring(host_domain_xml(plan_xml, host))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == NAME
    os_type = root.find("os/type")
    assert os_type is not None
    assert os_type.get("machine") == "pc"
    assert root.find("cpu") is None
    assert root.findtext("devices/emulator") == "/usr/bin/qemu-system-x86_64"
    assert root.findtext("memory") == "131072"
    for gone in ("interface", "graphics", "serial", "console"):
        assert root.find(f"devices/{gone}") is None, gone
    disk = root.find("devices/disk")
    assert disk is not None
    source = disk.find("source")
    assert source is not None
    assert source.get("file") == "/i/vda.raw"
    # What QoS is made of survives the adaptation unchanged.
    assert root.findtext("cputune/shares") == "512"
    assert root.findtext("devices/disk/iotune/read_bytes_sec") == "1000000"
    assert root.findtext("devices/disk/iotune/write_bytes_sec") == "1024000"
    assert root.findtext(f"metadata/{{{OWNER_NAMESPACE}}}owner") == "qosplane:t-"
    seclabel = root.find("seclabel")
    assert seclabel is not None
    assert seclabel.get("type") == "none"
    assert domain_iotune(plan_xml) == {
        "vda": {"read_bytes_sec": 1000000, "write_bytes_sec": 1024000}
    }
    assert domain_shares(plan_xml) == 512


def test_cpu_and_image_disk_limits_become_libvirt_parameters() -> None:
    qos, outcomes = host_program(HostPlan.from_json(resquota_plan()), LIBVIRT)
    assert qos.cpu is None  # libvirt owns the domain's cgroup
    assert qos.domain is not None
    assert dict(qos.domain.scheduler) == {
        "cpu_shares": 512,
        "vcpu_period": 100_000,
        "vcpu_quota": -1,
    }
    vda = qos.domain.iotune_map()["vda"]
    assert (vda["read_bytes_sec"], vda["write_bytes_sec"], vda["total_iops_sec"]) == (
        1_000_000,
        1_024_000,
        0,
    )
    mechanisms = {o.kind: o.mechanism for o in outcomes}
    assert mechanisms["cpu_shares"] == Mechanism.LIBVIRT_CPUTUNE.value
    assert mechanisms["disk_bytes"] == Mechanism.LIBVIRT_IOTUNE.value


def test_a_quota_from_the_flavor_reaches_the_scheduler() -> None:
    qos, _ = host_program(
        HostPlan.from_json(
            resquota_plan(**{"quota:cpu_quota": "50000", "quota:cpu_period": "100000"})
        ),
        LIBVIRT,
    )
    assert qos.domain is not None
    assert dict(qos.domain.scheduler)["vcpu_quota"] == 50_000


def test_domain_drift_names_each_parameter() -> None:
    want = DomainQos(NAME, "", (("cpu_shares", 512),), (("vda", (("read_bytes_sec", 1000),)),))
    assert domain_drift(NAME, want, want) == []
    assert [d.aspect for d in domain_drift(NAME, want, None)] == ["libvirt domain"]
    seen = DomainQos(NAME, "", (("cpu_shares", 2048),), (("vda", (("read_bytes_sec", 0),)),))
    assert [d.aspect for d in domain_drift(NAME, want, seen)] == [
        "libvirt cpu_shares",
        "libvirt iotune read_bytes_sec",
    ]


# --- contract: the fake hypervisor and a real libvirtd -------------------------------------


@pytest.fixture(params=["fake", "real"])
def host(request: pytest.FixtureRequest) -> Iterator[HostDrivers]:
    with drivers(request.param, libvirt=True) as d:
        yield d


def servers(**extra_specs: str) -> list[DesiredServer]:
    return [server_of(resquota_plan(**extra_specs), "server-01")]


def _live(host: HostDrivers) -> DomainQos:
    assert host.hypervisor is not None
    seen = host.hypervisor.observe(NAME)
    assert seen is not None
    return seen


def test_the_domain_runs_with_the_plans_limits_then_a_pass_changes_nothing(
    host: HostDrivers,
) -> None:
    reconciler = Reconciler(host, LIBVIRT)
    targets, first = reconciler.converge(servers())
    assert first.errors == {}
    assert first.drift_after == []
    domain = targets[0].qos.domain
    assert domain is not None
    live = _live(host)
    assert (live.scheduler, live.iotune) == (domain.scheduler, domain.iotune)
    reports = server_reports(targets, first)
    rules = {r.kind: r for r in reports[0].rules}
    assert rules["disk_bytes"].outcome is Outcome.APPLIED
    _, second = reconciler.converge(servers())
    assert (second.drift_before, second.removed, second.errors) == ([], [], {})


def _tamper(host: HostDrivers, what: str) -> None:
    hypervisor = host.hypervisor
    if isinstance(hypervisor, FakeHypervisor):
        current = hypervisor.domains[NAME]
        if what == "shares":
            hypervisor.domains[NAME] = DomainQos(
                NAME, "", (("cpu_shares", 2048), *current.scheduler[1:]), current.iotune
            )
        elif what == "iotune":  # vda's read_bytes_sec reset, as the real case below
            iotune = tuple(
                (t, tuple((k, 0 if (t, k) == ("vda", "read_bytes_sec") else v) for k, v in tune))
                for t, tune in current.iotune
            )
            hypervisor.domains[NAME] = DomainQos(NAME, "", current.scheduler, iotune)
        else:
            hypervisor.stopped.add(NAME)
        return
    assert isinstance(hypervisor, RealHypervisor)
    import libvirt

    dom = hypervisor._conn().lookupByName(NAME)
    if what == "shares":  # virsh schedinfo --set cpu_shares=2048 --live
        dom.setSchedulerParametersFlags({"cpu_shares": 2048}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    elif what == "iotune":  # virsh blkdeviotune vda --read-bytes-sec 0 --live
        dom.setBlockIoTune("vda", {"read_bytes_sec": 0}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    else:  # virsh destroy
        dom.destroy()


@pytest.mark.parametrize(
    ("what", "aspects"),
    [
        ("shares", {"libvirt cpu_shares"}),
        ("iotune", {"libvirt iotune read_bytes_sec"}),
        ("destroyed", {"libvirt domain"}),
    ],
)
def test_a_change_behind_the_agents_back_is_repaired_and_named(
    host: HostDrivers, what: str, aspects: set[str]
) -> None:
    reconciler = Reconciler(host, LIBVIRT)
    targets, _ = reconciler.converge(servers())
    _tamper(host, what)
    _, result = reconciler.converge(servers())
    found = {d.aspect for d in result.drift_before}
    assert aspects <= found
    assert result.errors == {}
    assert result.drift_after == []
    domain = targets[0].qos.domain
    assert domain is not None
    assert _live(host).scheduler == domain.scheduler


def test_a_flavor_change_is_applied_live_and_a_gone_server_is_removed(host: HostDrivers) -> None:
    reconciler = Reconciler(host, LIBVIRT)
    reconciler.converge(servers())
    changed = servers(**{"quota:cpu_shares": "256", "quota:disk_read_iops_sec": "50"})
    _, result = reconciler.converge(changed)
    assert result.errors == {}
    live = _live(host)
    assert dict(live.scheduler)["cpu_shares"] == 256
    assert live.iotune_map()["vda"]["read_iops_sec"] == 50
    _, empty = reconciler.converge([])
    assert NAME in empty.removed
    assert host.hypervisor is not None
    assert host.hypervisor.names() == set()


def test_the_disk_limits_hold_when_measured_through_qemu() -> None:
    """`verify` on a libvirt instance: each iotune value measured through the running
    domain's disk device (HMP qemu-io on its qdev path): the seed's 1,000,000 bytes/s read
    and 1,024,000 write, then 50 read IOPS after a live re-tune, each within 3%."""
    with drivers("real", libvirt=True) as host:
        reconciler = Reconciler(host, LIBVIRT)

        def verify(server: DesiredServer) -> dict[tuple[str, str], Verdict]:
            reconciler.converge([server])
            verdicts = verify_server(
                replace(server, ports=()),  # the disks only: the network is measured elsewhere
                LIBVIRT,
                host.instances,
                host.cgroups,
                host.volumes,
                5,
                host.hypervisor,
            )
            return {(v.kind, v.direction): v for v in verdicts}

        seed = verify(servers()[0])
        assert set(seed) == {("disk_bytes", "read"), ("disk_bytes", "write")}
        for verdict in seed.values():
            assert verdict.passed, verdict.to_json()
        retuned = verify(servers(**{"quota:disk_read_iops_sec": "50"})[0])
        iops = retuned[("disk_iops", "read")]
        assert (iops.configured, iops.passed) == ("50 IOPS", True), iops.to_json()


def test_on_cgroup_v2_an_unset_weight_is_v2s_default() -> None:
    """Zed-onward Nova writes no shares; libvirt then leaves the kernel's default, which on
    cgroup v2 is weight 100, not v1's 1024 (else the domain would drift every pass)."""
    body = copy.deepcopy(load_case("m1-resquota.yaml"))
    body["host"] = {**(body.get("host") or {}), "vif_type": "hybrid", "nova_shares_default": "none"}
    body["flavor"]["extra_specs"].pop("quota:cpu_shares")
    plan = plan_of(body)
    v2 = Capabilities(htb=True, cgroup_v2=True, cgroup_v2_cpu=True, libvirt=True)
    qos, _ = host_program(plan, v2)
    assert qos.domain is not None
    assert dict(qos.domain.scheduler)["cpu_shares"] == 100
    qos, _ = host_program(plan, LIBVIRT)
    assert qos.domain is not None
    assert dict(qos.domain.scheduler)["cpu_shares"] == 1024


def test_images_left_without_a_domain_are_removed() -> None:
    """A definition that failed, or a domain undefined behind the agent's back, leaves its
    image: the pass removes it with the server that is gone."""
    with drivers("real", libvirt=True) as host:
        hypervisor = host.hypervisor
        assert isinstance(hypervisor, RealHypervisor)
        hypervisor.images.mkdir(parents=True, exist_ok=True)
        stray = hypervisor.images / "instance-000000ff-vda.raw"
        stray.write_bytes(b"")
        assert "instance-000000ff" in hypervisor.names()
        _, result = Reconciler(host, LIBVIRT).converge(servers())
        assert "instance-000000ff" in result.removed
        assert not stray.exists()
