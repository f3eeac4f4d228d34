"""A real guest's disks (issue 12, items 2 to 4): the flavor's image disk and an attached
Cinder volume are virtio disks of the domain, each with the `<iotune>` Nova writes (the
volume's on a network disk whose source is its NBD export), measured by the guest's own dd,
re-tuned live with the guest's QEMU staying the same, and the volume unplugged and plugged
again while the guest runs.

Needs root, libvirtd, QEMU, qemu-storage-daemon and the guest image's packages; CI installs
them (scripts/host-packages). One guest of 192 MiB under TCG.
"""

from __future__ import annotations

import copy
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from qosplane.agent.measurement import iotune_burst, verify_server
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.cli.hostside import LIBVIRT_TOOLS
from qosplane.compiler.enforcement.backends.libvirt_domain import (
    NBD_EXPORT,
    DomainHost,
    host_domain_xml,
    volume_disk_xml,
)
from qosplane.compiler.enforcement.program import host_program
from qosplane.host.cgroups import FakeCgroups, RealCgroups
from qosplane.host.guest_agent import GuestAgent
from qosplane.host.hypervisor import FakeHypervisor, RealHypervisor
from qosplane.host.instances import FakeInstances, RealInstances
from qosplane.host.measure import VIRTIO_SERIAL_BYTES
from qosplane.host.nft import FakeDscpMarking, RealDscpMarking
from qosplane.host.tc import FakeTrafficControl, RealTrafficControl
from qosplane.host.volumes import FakeVolumes, RealVolumes
from qosplane.model.host_state import DomainQos, Mechanism, Outcome
from qosplane.model.plan import AttachedVolume, DesiredServer
from qosplane.model.units import Kibibytes
from qosplane.verify.drift import domain_drift
from tests.conftest import load_case, plan_of, require_root_and
from tests.hostkit import HOST_TOOLS, own_libvirt, remove_everything, server_of
from tests.test_guest_image import IMAGE_TOOLS, _require_image_inputs
from tests.test_host_libvirt import LIBVIRT

GUEST_VOLUMES = replace(LIBVIRT, qemu_storage_daemon=True, guest_volumes=True)
VOLUME_ID = "6ad2a2c5-55a5-4d4c-8a51-a3d3e4f0c1a1"  # cinder-per-gb.yaml's
IMAGE_READ_BYTES_PER_S = 2_000_000


def _server(read_iops_sec_per_gb: str = "10", attached: bool = True, **specs: str) -> DesiredServer:
    """cinder-per-gb.yaml (a 10 GB volume, read_iops_sec_per_gb front-end) on a Linux
    bridge host, its flavor limiting the image disk's reads too; or the same server with
    its volume detached."""
    body = copy.deepcopy(load_case("cinder-per-gb.yaml"))
    body["host"] = {"vif_type": "hybrid"}
    body["flavor"]["extra_specs"] = {"quota:disk_read_bytes_sec": str(IMAGE_READ_BYTES_PER_S)}
    body["volumes"][0]["qos_specs"]["specs"] = {
        "read_iops_sec_per_gb": read_iops_sec_per_gb,
        **specs,
    }
    if not attached:
        body["volumes"] = []
    volumes = [AttachedVolume(VOLUME_ID, "vdb", 10)] if attached else []
    plan = plan_of(body).to_json()
    return server_of(plan, "00000000-0000-0000-0000-0000000000b1", "10.212", volumes)


# --- pure, and the fakes ---------------------------------------------------------------


def test_a_guests_volume_is_a_network_disk_on_its_export_with_its_iotune() -> None:
    plan_xml = _server().plan.domain_xml
    host = DomainHost(
        "qemu",
        "/usr/bin/qemu-system-x86_64",
        Kibibytes(196608),
        {"vda": "/i/vda.raw"},
        volumes={"vdb": "/s/vol.sock"},
    )
    disks = {
        d.find("target").get("dev"): d  # type: ignore[union-attr]
        for d in ET.fromstring(host_domain_xml(plan_xml, host)).findall("devices/disk")
    }
    volume = disks["vdb"]
    assert volume.get("type") == "network"
    source = volume.find("source")
    assert source is not None
    assert (source.get("protocol"), source.get("name")) == ("nbd", NBD_EXPORT)
    assert source.find("host").attrib == {"transport": "unix", "socket": "/s/vol.sock"}  # type: ignore[union-attr]
    assert volume.findtext("serial") == VOLUME_ID  # Nova's: how the guest finds it
    assert volume.findtext("iotune/read_iops_sec") == "100"
    assert volume.find("driver").get("cache") == "none"  # type: ignore[union-attr]
    assert disks["vda"].findtext("serial") == "vda"  # an image disk: its target's name
    # Without a guest the volume is the export's alone, and not a disk of the domain.
    bare = replace(host, volumes={})
    assert "vdb" not in host_domain_xml(plan_xml, bare)
    # The same disk for a live attach; a target the plan lacks is a bug, said so.
    attach = ET.fromstring(volume_disk_xml(plan_xml, "vdb", "/s/vol.sock"))
    assert ET.tostring(attach) == ET.tostring(volume).strip()
    with pytest.raises(ValueError, match="no disk vdz"):
        volume_disk_xml(plan_xml, "vdz", "/s/vol.sock")


def test_with_guest_volumes_the_volumes_disk_holds_its_front_end_limits() -> None:
    server = _server(write_iops_sec="50", write_iops_sec_max="100")
    qos, outcomes = host_program(server.plan, GUEST_VOLUMES, server.volumes)
    assert qos.domain is not None
    assert qos.domain.volumes == (("vdb", VOLUME_ID),)
    vdb = qos.domain.iotune_map()["vdb"]
    assert (vdb["read_iops_sec"], vdb["write_iops_sec"], vdb["write_iops_sec_max"]) == (
        100,
        50,
        100,
    )
    assert vdb["read_bytes_sec"] == vdb["read_iops_sec_max"] == 0  # explicit: reset live
    # Still exported (the disk's source), throttling nothing itself.
    assert [(v.volume_id, v.limits) for v in qos.volumes] == [(VOLUME_ID, ())]
    assert {o.mechanism for o in outcomes if o.device == "vdb"} == {Mechanism.LIBVIRT_IOTUNE.value}
    # A guest with no qemu-storage-daemon to export to it: the volume is not its disk.
    no_export = replace(GUEST_VOLUMES, qemu_storage_daemon=False)
    alone, refused = host_program(server.plan, no_export, server.volumes)
    assert alone.domain is not None
    assert alone.domain.volumes == ()
    assert "vdb" not in alone.domain.iotune_map()
    assert {o.outcome for o in refused if o.device == "vdb"} == {Outcome.NOT_ENFORCEABLE}
    # Without a guest the export's throttle-group holds them, as before.
    bare, _ = host_program(server.plan, replace(GUEST_VOLUMES, guest_volumes=False), server.volumes)
    assert bare.domain is not None
    assert "vdb" not in bare.domain.iotune_map()
    assert bare.domain.volumes == ()
    assert dict(bare.volumes[0].limits) == {"x-iops-read": 100, "x-iops-write": 50}


def test_domain_drift_names_a_disk_to_plug_or_unplug() -> None:
    tune = (("read_iops_sec", 100),)
    want = DomainQos("i", "", (), (("vda", ()), ("vdb", tune)), (("vdb", VOLUME_ID),))
    without = DomainQos("i", "", (), (("vda", ()),))
    assert [
        (d.device, d.aspect, d.desired, d.observed) for d in domain_drift("i", want, without)
    ] == [("vdb", "libvirt disk", "attached", "not attached")]
    assert [(d.device, d.desired) for d in domain_drift("i", without, want)] == [
        ("vdb", "not attached")
    ]
    assert domain_drift("i", want, want) == []


def test_a_measurement_starts_after_qemus_bucket() -> None:
    assert iotune_burst(100, 0) == 10  # a tenth of a second of the limit
    assert iotune_burst(50, 100) == 100  # a *_max: that much at once, for 1 s
    assert iotune_burst(50, 100, burst_length_s=3) == 300


def test_a_volume_is_exported_before_the_guest_that_reads_it_is_defined() -> None:
    """The fake hypervisor refuses a volume disk no export serves, as QEMU does: a first
    pass defines the guest with its volume, a later one unplugs it and plugs it again."""
    volumes = FakeVolumes()
    hypervisor = FakeHypervisor(volumes=volumes)
    drivers = HostDrivers(
        FakeInstances(), FakeTrafficControl(), FakeDscpMarking(), FakeCgroups(), volumes,
        hypervisor=hypervisor,
    )  # fmt: skip
    reconciler = Reconciler(drivers, GUEST_VOLUMES)
    _, first = reconciler.converge([_server()])
    assert first.errors == {}
    name = _server().plan.instance_name
    assert "vdb" in hypervisor.domains[name].iotune_map()
    assert volumes.observe(VOLUME_ID) == {}
    _, detached = reconciler.converge([_server(attached=False)])
    assert detached.errors == {}
    assert "vdb" not in hypervisor.domains[name].iotune_map()
    # The export outlives the pass that unplugs the disk (a guest may still read it) and
    # goes with the next one.
    assert volumes.volume_ids() == {VOLUME_ID}
    reconciler.converge([_server(attached=False)])
    assert volumes.volume_ids() == set()
    _, again = reconciler.converge([_server()])
    assert again.errors == {}
    assert [(d.device, d.aspect) for d in again.drift_before] == [("vdb", "libvirt disk")]
    assert "vdb" in hypervisor.domains[name].iotune_map()


# --- a real guest --------------------------------------------------------------------------


@dataclass
class Guest:
    drivers: HostDrivers
    hypervisor: RealHypervisor
    volumes: RealVolumes
    reconciler: Reconciler
    agent: GuestAgent
    name: str


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    require_root_and(*HOST_TOOLS, *LIBVIRT_TOOLS, *IMAGE_TOOLS, "qemu-storage-daemon")
    _require_image_inputs()
    tag = uuid.uuid4().hex[:6]
    host_ns, prefix = f"qpgv-host-{tag}", f"qpgv{tag}-"
    state = tmp_path_factory.mktemp("guestvol")
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    instances = RealInstances(prefix=prefix, host_netns=host_ns, guest_taps=True)
    cgroups = RealCgroups(root=f"qosplane-guestvol-{tag}")
    volumes = RealVolumes(state / "volumes")
    try:
        with own_libvirt(
            host_ns, prefix, guest_images=state / "image", volume_socket=volumes.socket
        ) as hypervisor:
            drivers = HostDrivers(
                instances,
                RealTrafficControl(host_ns),
                RealDscpMarking(host_ns),
                cgroups,
                volumes,
                hypervisor=hypervisor,
            )
            reconciler = Reconciler(drivers, GUEST_VOLUMES)
            server = _server()
            _, result = reconciler.converge([server])
            assert result.errors == {}, result.errors
            name = server.plan.instance_name
            agent = hypervisor.agent(name)
            agent.wait_ready(120)
            yield Guest(drivers, hypervisor, volumes, reconciler, agent, name)
    finally:
        remove_everything(instances, cgroups, volumes, host_ns)


def _disks(guest: Guest) -> dict[str, ET.Element]:
    dom = guest.hypervisor._lookup(guest.name)
    assert dom is not None
    root = ET.fromstring(dom.XMLDesc(0))
    return {d.find("target").get("dev", ""): d for d in root.findall("devices/disk")}  # type: ignore[union-attr]


def _guest_serials(guest: Guest) -> set[str]:
    shown = guest.agent.run(
        ["/bin/sh", "-c", "for f in /sys/block/vd*/serial; do cat $f; echo; done"]
    )
    assert shown.exit_code == 0, shown.stderr
    return set(shown.stdout.decode().split())


def _qemu_pid(guest: Guest) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"guest=.*{guest.name}"], capture_output=True, text=True, check=True
    )
    (pid,) = found.stdout.split()
    return int(pid)


def _disk_verdicts(guest: Guest, server: DesiredServer) -> dict[tuple[str, str, str], Any]:
    verdicts = verify_server(
        server,
        GUEST_VOLUMES,
        guest.drivers.instances,
        guest.drivers.cgroups,
        guest.volumes,
        3,
        guest.hypervisor,
    )
    return {(v.device, v.kind, v.direction): v for v in verdicts if v.kind.startswith("disk")}


def test_the_volume_is_a_disk_of_the_domain_on_its_export_with_novas_iotune(
    guest: Guest,
) -> None:
    disks = _disks(guest)
    assert set(disks) == {"vda", "vdb"}
    volume = disks["vdb"]
    source = volume.find("source")
    assert volume.get("type") == "network"
    assert source is not None
    assert source.get("protocol") == "nbd"
    assert source.find("host").get("socket") == guest.volumes.socket(VOLUME_ID)  # type: ignore[union-attr]
    assert volume.findtext("serial") == VOLUME_ID
    assert volume.findtext("iotune/read_iops_sec") == "100"  # 10 per GB x 10 GB
    assert disks["vda"].findtext("iotune/read_bytes_sec") == str(IMAGE_READ_BYTES_PER_S)
    # The disk holds the limit: the export under it throttles nothing.
    assert guest.volumes.observe(VOLUME_ID) == {}
    # The guest sees both disks, the volume by (the first 20 bytes of) its id.
    assert _guest_serials(guest) == {"vda", VOLUME_ID[:VIRTIO_SERIAL_BYTES]}


def test_the_guest_measures_the_volumes_and_the_image_disks_read_limits(guest: Guest) -> None:
    verdicts = _disk_verdicts(guest, _server())
    assert set(verdicts) == {("vda", "disk_bytes", "read"), ("vdb", "disk_iops", "read")}
    for verdict in verdicts.values():
        assert "inside the guest" in verdict.method, verdict.method
        assert verdict.outcome == "pass", verdict.to_json()
    assert verdicts[("vdb", "disk_iops", "read")].configured.startswith("100 ")


def test_a_qos_spec_change_reaches_the_running_guest_live(guest: Guest) -> None:
    """Cinder never re-applies a changed spec to an attached volume; the agent does, through
    virDomainSetBlockIoTune, and the guest's QEMU process is the same one."""
    pid = _qemu_pid(guest)
    # 40 read IOPS; 50 write IOPS bursting to 100 (a flat *_max: beside a *_per_gb, Cinder
    # reads the *_max as the per-GB value's cap instead).
    retuned = _server("4", write_iops_sec="50", write_iops_sec_max="100")
    _, result = guest.reconciler.converge([retuned])
    assert result.errors == {}, result.errors
    assert sorted((d.device, d.aspect, d.desired) for d in result.drift_before) == [
        ("vdb", "libvirt iotune read_iops_sec", "40"),
        ("vdb", "libvirt iotune write_iops_sec", "50"),
        ("vdb", "libvirt iotune write_iops_sec_max", "100"),
    ]
    assert result.drift_after == []
    assert _qemu_pid(guest) == pid
    dom = guest.hypervisor._lookup(guest.name)
    assert dom is not None
    live = dom.blockIoTune("vdb", 0)
    assert (live["read_iops_sec"], live["write_iops_sec"], live["write_iops_sec_max"]) == (
        40,
        50,
        100,
    )
    measured = {
        v.direction: v for v in _disk_verdicts(guest, retuned).values() if v.device == "vdb"
    }
    assert measured["read"].configured.startswith("40 ")
    assert measured["write"].configured.startswith("50 ")  # timed once its burst is spent
    for verdict in measured.values():
        assert verdict.outcome == "pass", verdict.to_json()
    _, back = guest.reconciler.converge([_server()])
    assert back.errors == {}


def test_the_volume_is_unplugged_and_plugged_again_while_the_guest_runs(guest: Guest) -> None:
    pid = _qemu_pid(guest)
    detached = _server(attached=False)
    deadline = time.monotonic() + 60  # the guest ejects it (ACPI): slow under TCG
    while True:
        _, result = guest.reconciler.converge([detached])
        assert result.errors == {}, result.errors
        if "vdb" not in _disks(guest):
            break
        assert time.monotonic() < deadline, "the guest never let the volume go"
        time.sleep(1)
    assert VOLUME_ID[:VIRTIO_SERIAL_BYTES] not in _guest_serials(guest)
    _, quiet = guest.reconciler.converge([detached])
    assert quiet.drift_before == []
    assert VOLUME_ID not in guest.volumes.volume_ids()  # its export went after the disk
    # Plugged again: exported first, then attached with its limit, seen by the guest.
    _, result = guest.reconciler.converge([_server()])
    assert result.errors == {}, result.errors
    assert [(d.device, d.aspect) for d in result.drift_before] == [("vdb", "libvirt disk")]
    assert result.drift_after == []
    assert _disks(guest)["vdb"].findtext("iotune/read_iops_sec") == "100"
    deadline = time.monotonic() + 30
    while VOLUME_ID[:VIRTIO_SERIAL_BYTES] not in _guest_serials(guest):
        assert time.monotonic() < deadline, "the guest never saw the volume"
        time.sleep(1)
    assert _qemu_pid(guest) == pid
    # Stopped behind the agent's back: the plugged volume is in the persistent definition
    # too, so the domain starts again with it and its limit.
    dom = guest.hypervisor._lookup(guest.name)
    assert dom is not None
    dom.destroy()
    _, restarted = guest.reconciler.converge([_server()])
    assert restarted.errors == {}, restarted.errors
    assert restarted.drift_after == []
    assert _disks(guest)["vdb"].findtext("iotune/read_iops_sec") == "100"
    guest.agent.wait_ready(120)
    assert VOLUME_ID[:VIRTIO_SERIAL_BYTES] in _guest_serials(guest)
