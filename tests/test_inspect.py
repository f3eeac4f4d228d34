"""`qosplane inspect` (issue 14, item 3), libvirt's layer: the plan's domain against what
a host really holds. On the seed's captured `virsh dumpxml` of vm_resquota (copied into
tests/data from ../shared/seed/qos-nova-neutron-cinder.md), with a Cinder spec changed
after attach, and on a real libvirtd's running domain re-tuned behind the plan's back.

The real case needs root, libvirtd and QEMU (CI installs them, scripts/host-packages)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.host.hypervisor import RealHypervisor
from qosplane.model.plan import HostPlan
from qosplane.verify.inspect import HostDomain, inspect_domain, render_inspect
from tests.conftest import load_case, plan_of
from tests.hostkit import drivers, server_of
from tests.test_host_libvirt import LIBVIRT, resquota_plan

SEED_XML = (Path(__file__).parent / "data" / "seed-vm_resquota-dumpxml.xml").read_text()


def _status(rows: list, device: str, key: str) -> tuple[str, int | None, int | None]:  # type: ignore[type-arg]
    (row,) = [r for r in rows if (r.device, r.key) == (device, key)]
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
    rows = inspect_domain(plan.domain_xml, hypervisor.read_domain(name))
    assert _status(rows, "vda", "read_bytes_sec") == ("holds", 1000000, 1000000)
    assert _status(rows, "cpu", "cpu_shares") == ("holds", 512, 512)
    # This host's domain has no NICs (firmware only): libvirt holds no <bandwidth>.
    assert _status(rows, "tapbb8410ad-a0", "inbound.average") == ("missing", 32768, None)
    dom = hypervisor._conn().lookupByName(name)  # virsh blkdeviotune / schedinfo --live
    # libvirt sends QEMU the whole bps group at once: the write rate is given again.
    tune = {"read_bytes_sec": 500, "write_bytes_sec": 1024000}
    dom.setBlockIoTune("vda", tune, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    dom.setSchedulerParametersFlags({"cpu_shares": 2048}, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    rows = inspect_domain(plan.domain_xml, hypervisor.read_domain(name))
    assert _status(rows, "vda", "read_bytes_sec") == ("differs", 1000000, 500)
    assert _status(rows, "vda", "write_bytes_sec") == ("holds", 1024000, 1024000)
    assert _status(rows, "cpu", "cpu_shares") == ("differs", 512, 2048)
    assert hypervisor.read_domain("instance-nowhere") is None
