"""Host drivers for tests: the in-memory fakes, or the real drivers confined to a
throwaway host namespace, name prefix and cgroup, all removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from qosplane.agent.reconcile import HostDrivers
from qosplane.cli.hostside import LIBVIRT_TOOLS
from qosplane.host.cgroups import FakeCgroups, RealCgroups
from qosplane.host.hypervisor import FakeHypervisor, LibvirtDaemon, RealHypervisor
from qosplane.host.instances import FakeInstances, RealInstances
from qosplane.host.nft import FakeDscpMarking, RealDscpMarking
from qosplane.host.ovn import FakeOvnSwitch, OvnDaemons, RealOvnSwitch
from qosplane.host.ovs import FakeSwitch, OvsDaemons, RealSwitch
from qosplane.host.tc import FakeTrafficControl, RealTrafficControl
from qosplane.host.volumes import FakeVolumes, RealVolumes
from qosplane.model.plan import AttachedVolume, DesiredServer
from tests.conftest import require_python_module, require_root_and

HOST_TOOLS = ("ip", "tc", "nft")
OVS_TOOLS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ethtool")
OVN_TOOLS = ("ovn-northd", "ovn-controller", "ovn-nbctl")  # Debian ovn-central, ovn-host


def fake_drivers(ovs: bool = False, libvirt: bool = False, ovn: bool = False) -> HostDrivers:
    tc = FakeTrafficControl()
    switch = FakeSwitch() if ovs else None
    ovn_switch = FakeOvnSwitch() if ovn else None
    return HostDrivers(
        FakeInstances(tc=tc, switch=switch if switch is not None else ovn_switch),
        tc,
        FakeDscpMarking(),
        FakeCgroups(),
        FakeVolumes(),
        switch,
        FakeHypervisor() if libvirt else None,
        ovn_switch,
    )


def remove_everything(
    instances: RealInstances, cgroups: RealCgroups, volumes: RealVolumes, host_ns: str
) -> None:
    """Everything real drivers confined to `host_ns` may have made, and `host_ns` itself."""
    volumes.remove_everything()
    instances.remove_everything()
    cgroups.remove_everything()
    subprocess.run(["ip", "netns", "del", host_ns], check=False)


@contextmanager
def own_ovs(host_ns: str, prefix: str) -> Iterator[RealSwitch]:
    """An ovsdb-server and ovs-vswitchd of their own in `host_ns`, stopped and deleted
    afterwards, with the agent's bridge on them."""
    require_root_and(*OVS_TOOLS)
    state = Path(tempfile.mkdtemp(prefix="qptest-ovs-"))
    daemons = OvsDaemons(state, host_ns)
    try:
        daemons.ensure()
        switch = RealSwitch(daemons, "br-int", prefix)
        try:
            yield switch
        finally:
            switch.close()
    finally:
        daemons.stop()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def own_ovn(host_ns: str, prefix: str) -> Iterator[RealOvnSwitch]:
    """An Open vSwitch and an OVN of their own (ovs-vswitchd and ovn-controller in
    `host_ns`), stopped and deleted afterwards, with the agent's br-int on them."""
    require_root_and(*OVS_TOOLS, *OVN_TOOLS)
    state = Path(tempfile.mkdtemp(prefix="qptest-ovn-"))
    daemons = OvnDaemons(state / "ovn", OvsDaemons(state / "ovs", host_ns), f"qptest-{prefix}")
    try:
        switch = RealOvnSwitch(daemons, "br-int", prefix)
        try:
            yield switch
        finally:
            switch.close()
    finally:
        daemons.stop()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def own_libvirt(
    host_ns: str,
    prefix: str,
    guest_images: Path | None = None,
    volume_socket: Callable[[str], str] | None = None,
) -> Iterator[RealHypervisor]:
    """A libvirtd of its own (state in a temporary directory, private mounts, `host_ns`),
    stopped afterwards with every domain it ran, and the /machine cgroups libvirt leaves
    behind removed when empty."""
    require_root_and(*LIBVIRT_TOOLS)
    require_python_module("libvirt", "libvirt-python; scripts/venv.sh installs it with libvirt-dev")
    state = Path(tempfile.mkdtemp(prefix="qptest-libvirt-"))
    daemon = LibvirtDaemon(state / "daemon", host_ns)
    existed = set(Path("/sys/fs/cgroup").glob("*/machine"))
    try:
        daemon.ensure()
        hypervisor = RealHypervisor(
            daemon.uri,
            state / "images",
            prefix,
            guest_images=guest_images,
            volume_socket=volume_socket,
        )
        try:
            yield hypervisor
        finally:
            hypervisor.remove_everything()
            hypervisor.close()
    finally:
        daemon.stop()
        for leftover in set(Path("/sys/fs/cgroup").glob("*/machine")) - existed:
            with contextlib.suppress(OSError):  # not empty: something else uses it now
                leftover.rmdir()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def real_drivers(ovs: bool = False, ovn: bool = False) -> Iterator[HostDrivers]:
    require_root_and(*HOST_TOOLS, *(OVS_TOOLS if ovs or ovn else ()), *(OVN_TOOLS if ovn else ()))
    tag = uuid.uuid4().hex[:6]
    host_ns = f"qptest-host-{tag}"
    prefix = f"qpt{tag}-"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    cgroups = RealCgroups(root=f"qosplane-test-{tag}")
    volumes_dir = Path(tempfile.mkdtemp(prefix="qptest-volumes-"))
    volumes = RealVolumes(volumes_dir)
    instances = RealInstances(prefix=prefix, host_netns=host_ns)
    try:
        if ovn:
            with own_ovn(host_ns, prefix) as ovn_switch:
                instances = RealInstances(prefix=prefix, host_netns=host_ns, switch=ovn_switch)
                yield HostDrivers(
                    instances,
                    RealTrafficControl(host_ns),
                    RealDscpMarking(host_ns),
                    cgroups,
                    volumes,
                    ovn=ovn_switch,
                )
            return
        if not ovs:
            yield HostDrivers(
                instances, RealTrafficControl(host_ns), RealDscpMarking(host_ns), cgroups, volumes
            )
            return
        with own_ovs(host_ns, prefix) as switch:
            instances = RealInstances(prefix=prefix, host_netns=host_ns, switch=switch)
            yield HostDrivers(
                instances,
                RealTrafficControl(host_ns),
                RealDscpMarking(host_ns),
                cgroups,
                volumes,
                switch,
            )
    finally:
        remove_everything(instances, cgroups, volumes, host_ns)
        shutil.rmtree(volumes_dir, ignore_errors=True)


@contextmanager
def drivers(
    kind: str, ovs: bool = False, libvirt: bool = False, ovn: bool = False
) -> Iterator[HostDrivers]:
    if kind == "fake":
        yield fake_drivers(ovs, libvirt, ovn)
        return
    with real_drivers(ovs, ovn) as real:
        if not libvirt:
            yield real
            return
        assert isinstance(real.instances, RealInstances)
        assert real.instances.host_netns is not None
        with own_libvirt(real.instances.host_netns, real.instances.prefix) as hypervisor:
            yield replace(real, hypervisor=hypervisor)


def server_of(
    plan: dict[str, Any],
    server_id: str,
    net_prefix: str = "10.77",
    volumes: Sequence[AttachedVolume] = (),
) -> DesiredServer:
    """The watch's server entry for a compiled case plan (its JSON form, which tests edit):
    ports from the plan's devices."""
    port_ids = sorted(
        {e["port_id"] for e in plan["effective"] if e.get("port_id")}
        | {d["port_id"] for d in plan.get("ports", []) if "port_id" in d}
    )
    ports = []
    for i, port_id in enumerate(port_ids):
        net = f"net{i:02d}" + "0" * 30
        ports.append(
            {
                "id": port_id,
                "tap": ("tap" + port_id)[:14],
                "mac": f"fa:16:3e:00:{i:02x}:{int(server_id[-2:], 16):02x}",
                "network_id": net,
                "mtu": 1500,
                "addresses": [
                    {
                        # 10..249: a random id's last byte can be up to 255.
                        "address": f"{net_prefix}.{i}.{10 + int(server_id[-2:], 16) % 240}/24",
                        "gateway": f"{net_prefix}.{i}.1/24",
                    }
                ],
            }
        )
    entry = {"id": server_id, "plan_revision": 1, "plan": plan, "ports": ports}
    return replace(DesiredServer.from_json(entry), volumes=tuple(volumes))
