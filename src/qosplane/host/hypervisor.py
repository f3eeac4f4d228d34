"""libvirt instances: the plan's domain, defined and started (KVM where /dev/kvm works, TCG
otherwise), its CPU and image-disk limits read and re-tuned live through the libvirt API.

- `virDomainGetSchedulerParameters` / `virDomainSetSchedulerParametersFlags` (cpu_shares,
  vcpu_quota, vcpu_period: libvirt writes the domain's cgroup);
- `virDomainGetBlockIoTune` / `virDomainSetBlockIoTune` per disk (libvirt sends QEMU's
  `block_set_io_throttle`; since libvirt's -blockdev switch the limits are not in the
  QEMU command line at all, host-capabilities.md §5).

Both live and then in the persistent definition, so a restarted domain keeps them. The values
are read back live each pass, so `virsh schedinfo --set` or `virsh blkdeviotune` behind the
agent's back is drift.

LibvirtDaemon starts the agent's own libvirtd when the host runs none: libvirt resolves
its `libvirt-qemu` user before reading qemu.conf and keeps state under /etc/libvirt, /run
and /var/lib, so it runs in a private mount namespace with those bind-mounted from the
state directory and a passwd copy holding that user (host-capabilities.md §5's recipe;
`nsenter --net`, not `ip netns exec`, which remounts /sys and hides the cgroups).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qosplane.compiler.enforcement.backends.libvirt_domain import (
    IOTUNE_KEYS,
    OWNER_NAMESPACE,
    DomainHost,
    GuestBoot,
    HostNic,
    host_domain_xml,
    volume_disk_xml,
)
from qosplane.host.errors import HostError, PermanentHostError
from qosplane.host.guest_agent import GuestAgent
from qosplane.host.guest_image import (
    BOOTED_LINE,
    GuestImage,
    GuestNic,
    build_guest_image,
    nic_arguments,
)
from qosplane.host.instances import PortWire
from qosplane.host.measure import DiskRate
from qosplane.host.process import run
from qosplane.host.volumes import Volumes
from qosplane.model.host_state import LIBVIRT_UNLIMITED_QUOTA, DomainQos
from qosplane.model.units import Kibibytes
from qosplane.verify.inspect import BANDWIDTH_ATTRIBUTES, HostDomain
from qosplane.verify.inspect import IOTUNE_ELEMENTS as INSPECTED_IOTUNE

try:
    import libvirt
    import libvirt_qemu
except ImportError:  # optional: only the libvirt instance driver needs it
    libvirt = None
    libvirt_qemu = None


def has_libvirt_python() -> bool:
    return libvirt is not None


SYSTEM_SOCKET = Path("/run/libvirt/libvirt-sock")
NO_QUOTA_ABOVE = 2**40  # a vcpu_quota above this is libvirt's "no quota" on cgroup v2
SCHEDULER_KEYS = ("cpu_shares", "vcpu_period", "vcpu_quota")
IMAGE_BYTES = 64 * 1024 * 1024
GUEST_MEMORY_KIB = Kibibytes(128 * 1024)  # no guest OS runs: firmware only
GUEST_OS_MEMORY_KIB = Kibibytes(192 * 1024)  # the guest image's kernel and initramfs
GUEST_CMDLINE = "console=ttyS0 quiet panic=-1"
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
"""
LIBVIRTD_CONF = """\
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
QEMU_USER = "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n"
QEMU_GROUP = "libvirt-qemu:x:64055:\n"


# libvirt's error codes (virerror.h) for a definition or value it refuses outright; others
# (a dropped connection, a domain that is shutting down) may pass on the next try.
_LIBVIRT_REFUSALS = (
    "VIR_ERR_XML_ERROR",
    "VIR_ERR_XML_DETAIL",
    "VIR_ERR_CONFIG_UNSUPPORTED",
    "VIR_ERR_INVALID_ARG",
    "VIR_ERR_OPERATION_UNSUPPORTED",
    "VIR_ERR_NO_SUPPORT",
)


def _libvirt_failure(operation: str, exc: Any) -> HostError:
    code = exc.get_error_code()
    refused = {getattr(libvirt, name, None) for name in _LIBVIRT_REFUSALS} - {None}
    if code in refused:
        return PermanentHostError(operation, str(exc))
    return HostError(operation, str(exc))


class Hypervisor(Protocol):
    def ensure(self, desired: DomainQos, ports: Sequence[PortWire] = ()) -> None:
        """Define the domain (from the plan's XML, adapted to this host) unless it is, and
        start it unless it runs; a real guest's NICs are `ports`."""

    def observe(self, name: str) -> DomainQos | None:
        """Live scheduler and iotune values; None when the domain does not run."""

    def apply(self, desired: DomainQos) -> None:
        """Re-tune a running domain live, plugging and unplugging its volume disks."""

    def remove(self, name: str) -> None: ...

    def names(self) -> set[str]:
        """Domains this agent defined."""

    def disk_rate(
        self, name: str, target: str, op: str, request_bytes: int, count: int, warmup: int = 0
    ) -> DiskRate: ...

    @property
    def boots_guests(self) -> bool:
        """Whether each domain is a real guest (its NICs, its agent), not firmware only."""

    def agent(self, name: str) -> GuestAgent:
        """The running real guest's agent."""

    def qemu_pid(self, name: str) -> int:
        """The running domain's QEMU process."""

    def sockets_in_use(self) -> set[str]:
        """Volume export sockets the agent's domains still read a disk from."""


def find_qemu_pid(name: str, proc: Path = Path("/proc")) -> int | None:
    """The QEMU process libvirt started for domain `name`, found read-only in /proc by the
    `-name guest=NAME,...` libvirt gives it (qemu_command.c), whichever libvirtd runs it and
    without asking libvirt through the monitor (which taints a domain). None: no such
    process."""
    wanted = f"guest={name},"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # a process that ended while the list was read
        for i, arg in enumerate(args[:-1]):
            if arg == b"-name" and (args[i + 1].decode(errors="replace") + ",").startswith(wanted):
                return int(entry.name)
    return None


# --- the daemon ---------------------------------------------------------------------------


@dataclass
class LibvirtDaemon:
    state_dir: Path
    netns: str | None = None

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.state_dir / 'run' / 'libvirt' / 'libvirt-sock'}"

    def _pid(self) -> int | None:
        try:
            pid = int((self.state_dir / "run" / "libvirtd.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self._pid() is not None

    def ensure(self) -> None:
        if self.running():
            return
        d = self.state_dir
        for sub in ("etc", "run", "varlib", "cache", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (d / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
        if "\nlibvirt-qemu:" not in "\n" + passwd:
            passwd += QEMU_USER
        if "\nlibvirt-qemu:" not in "\n" + group:
            group += QEMU_GROUP
        (d / "passwd").write_text(passwd)
        (d / "group").write_text(group)
        binds = [
            ("etc", "/etc/libvirt"),
            ("run", "/run"),
            ("varlib", "/var/lib"),
            ("cache", "/var/cache"),
            ("log", "/var/log"),
            ("passwd", "/etc/passwd"),
            ("group", "/etc/group"),
        ]
        script = " && ".join(
            [
                *(f"mount --bind {d / src} {dst}" for src, dst in binds),
                "mkdir -p /var/log/libvirt /var/lib/libvirt /var/cache/libvirt",
                "exec libvirtd -d -p /run/libvirtd.pid",
            ]
        )
        # nsenter --net: `ip netns exec` would remount /sys and hide the cgroups.
        net = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        run(
            [
                *net,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ]
        )
        deadline = time.monotonic() + 5
        socket_path = d / "run" / "libvirt" / "libvirt-sock"
        while not socket_path.exists():
            if time.monotonic() > deadline:
                raise HostError("start libvirtd", f"no socket at {socket_path} after 5 s")
            time.sleep(0.02)

    def stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._pid() is not None:
            time.sleep(0.02)


# --- the real driver ----------------------------------------------------------------------


class RealHypervisor:
    """`daemon`: the agent's own libvirtd, started again when it is found dead."""

    def __init__(
        self,
        uri: str,
        images: Path,
        owner: str = "qp-",
        daemon: LibvirtDaemon | None = None,
        guest_images: Path | None = None,
        volume_socket: Callable[[str], str] | None = None,
    ) -> None:
        """`guest_images`: where the guest image is built and kept; with it each domain
        boots a real guest (host/guest_image.py) with its ports as NICs and its volumes as
        disks on their exports (`volume_socket`: a volume id's NBD socket, the volume
        driver's), else firmware only with no NICs."""
        if libvirt is None:
            raise HostError(
                "libvirt", "libvirt-python is not installed (pip install libvirt-python)"
            )
        # libvirt prints every error to stderr before raising it; the raised error is
        # what the agent reports, so the print is only noise.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.uri = uri
        self.images = images
        self.daemon = daemon
        self.owner = f"qosplane:{owner}"
        self.guest_images = guest_images
        self.volume_socket = volume_socket
        self._prepared: tuple[GuestImage, str] | None = None
        self._connection: Any = None

    def _conn(self) -> Any:
        if self._connection is not None and self._connection.isAlive():
            return self._connection
        if self.daemon is not None and not self.daemon.running():
            self.daemon.ensure()  # the agent's own libvirtd died: start it again
        try:
            self._connection = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HostError(f"connect to {self.uri}", str(exc)) from exc
        return self._connection

    @staticmethod
    def _active(dom: Any) -> bool:
        try:
            return bool(dom.isActive())
        except libvirt.libvirtError as exc:
            raise HostError(f"state of domain {dom.name()}", str(exc)) from exc

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _lookup(self, name: str) -> Any | None:
        try:
            return self._conn().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HostError(f"look up domain {name}", str(exc)) from exc

    def _ours(self, dom: Any) -> bool:
        try:
            text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NAMESPACE)
        except libvirt.libvirtError:
            return False
        return bool(re.search(rf">{re.escape(self.owner)}<", text))

    def _image(self, name: str, target: str) -> Path:
        return self.images / f"{name}-{target}.raw"

    @staticmethod
    def virt_type() -> str:
        """KVM when this process can open /dev/kvm, else TCG."""
        try:
            fd = os.open("/dev/kvm", os.O_RDWR)
        except OSError:
            return "qemu"
        os.close(fd)
        return "kvm"

    @property
    def boots_guests(self) -> bool:
        return self.guest_images is not None

    def prepare_guests(self) -> str:
        """Build the guest image and find out whether KVM boots it (once per image); one
        line saying which accelerator guests get, and why."""
        image, virt = self._image_and_virt()
        if virt == "kvm":
            return f"real guests run under KVM (image {image.key})"
        why = (
            "/dev/kvm cannot be opened"
            if self.virt_type() != "kvm"
            else "this host's KVM did not boot the guest image"
        )
        return f"real guests run under TCG, which is slow: {why} (image {image.key})"

    def _image_and_virt(self) -> tuple[GuestImage, str]:
        """Built and probed once per process (a pass defining a domain does not hash the
        image's inputs again, nor wait out a KVM probe); a new kernel takes a restart."""
        if self._prepared is None:
            assert self.guest_images is not None
            try:
                image = build_guest_image(self.guest_images)
                virt = "kvm" if self.virt_type() == "kvm" and kvm_boots(image) else "qemu"
            except OSError as exc:  # an unreadable /boot kernel, a full disk
                raise PermanentHostError("guest image", str(exc)) from exc
            self._prepared = (image, virt)
        return self._prepared

    def _guest(self, ports: Sequence[PortWire]) -> tuple[str, GuestBoot, dict[str, HostNic]]:
        """The virt type, kernel boot and NIC bridges of a real guest on `ports`."""
        image, virt = self._image_and_virt()
        nics = [
            GuestNic(p.mac, p.addresses[0], p.gateway.split("/")[0] if p.gateway else None)
            for p in ports
            if p.addresses
        ]
        boot = GuestBoot(
            str(image.kernel), str(image.initrd), f"{GUEST_CMDLINE} {nic_arguments(nics)}"
        )
        return virt, boot, {p.tap: HostNic(p.bridge, p.mac, p.mtu_bytes) for p in ports}

    def ensure(self, desired: DomainQos, ports: Sequence[PortWire] = ()) -> None:
        dom = self._lookup(desired.name)
        if dom is not None and not self._ours(dom):
            raise PermanentHostError(
                f"define {desired.name}", "a domain of that name exists and is not ours"
            )
        try:
            if dom is None:
                self.images.mkdir(parents=True, exist_ok=True)
                images = {}
                volumes = dict(desired.volumes)
                for target, _ in desired.iotune:
                    if target in volumes:
                        continue  # its source is the volume's export
                    path = self._image(desired.name, target)
                    if not path.exists():
                        with path.open("wb") as image:
                            image.truncate(IMAGE_BYTES)
                    images[target] = str(path)
                emulator = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
                if self.boots_guests:
                    virt, boot, bridges = self._guest(ports)
                    host = DomainHost(
                        virt,
                        emulator,
                        GUEST_OS_MEMORY_KIB,
                        images,
                        self.owner,
                        boot,
                        bridges,
                        {t: self._socket(volume_id) for t, volume_id in desired.volumes},
                    )
                else:
                    host = DomainHost(
                        self.virt_type(), emulator, GUEST_MEMORY_KIB, images, self.owner
                    )
                dom = self._conn().defineXML(host_domain_xml(desired.plan_xml, host))
            if not self._active(dom):
                # Volumes attached or detached while it was stopped: its definition first.
                self._attach_detach(dom, desired, live=False)
                dom.create()
        except libvirt.libvirtError as exc:
            raise _libvirt_failure(f"start domain {desired.name}", exc) from exc

    def _socket(self, volume_id: str) -> str:
        if self.volume_socket is None:
            raise PermanentHostError("attach a volume", "this hypervisor has no volume driver")
        return self.volume_socket(volume_id)

    @staticmethod
    def _disks(dom: Any, flags: int = 0) -> dict[str, ET.Element]:
        """The domain's disks by target: live, or (VIR_DOMAIN_XML_INACTIVE) as defined."""
        out = {}
        for disk in ET.fromstring(dom.XMLDesc(flags)).findall("devices/disk"):
            target = disk.find("target")
            if target is not None and target.get("dev"):
                out[target.get("dev", "")] = disk
        return out

    @classmethod
    def _targets(cls, dom: Any) -> list[str]:
        return list(cls._disks(dom))

    def _attach_detach(self, dom: Any, desired: DomainQos, live: bool = True) -> None:
        """Plug the plan's volumes the domain lacks and unplug the volume disks the plan no
        longer has (network disks: an image disk is never unplugged): live and in the
        persistent definition, or (`live` False, a stopped domain) in the definition only.
        An unplug the guest has not finished is asked again by the next pass; QEMU may
        refuse the repeat ("already in the process of unplug"), which is the same answer."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if live:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        disks = self._disks(dom, 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE)
        wanted = {target for target, _ in desired.iotune}
        for target, volume_id in desired.volumes:
            if target not in disks:
                xml = volume_disk_xml(desired.plan_xml, target, self._socket(volume_id))
                dom.attachDeviceFlags(xml, flags)
        for target, disk in disks.items():
            if target not in wanted and disk.get("type") == "network":
                self._detach(dom, ET.tostring(disk, encoding="unicode"), flags)

    @staticmethod
    def _detach(dom: Any, xml: str, flags: int) -> None:
        try:
            dom.detachDeviceFlags(xml, flags)
        except libvirt.libvirtError as exc:
            if "in the process of unplug" in str(exc):
                return  # asked before: the guest has not let it go yet
            if exc.get_error_code() != libvirt.VIR_ERR_DEVICE_MISSING or not (
                flags & libvirt.VIR_DOMAIN_AFFECT_LIVE
            ):
                raise
            # Gone from the persistent definition by the first request: the live unplug
            # still waits on the guest.
            try:
                dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as again:
                if "in the process of unplug" not in str(again):
                    raise

    def sockets_in_use(self) -> set[str]:
        """The export sockets the agent's domains read a disk from, live or defined: an
        export is not stopped while a guest may still use it (an unplug in progress)."""
        out: set[str] = set()
        try:
            for dom in self._conn().listAllDomains(0):
                if not self._ours(dom):
                    continue
                for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
                    root = ET.fromstring(dom.XMLDesc(flags))
                    for host in root.findall("devices/disk/source/host"):
                        if host.get("socket"):
                            out.add(host.get("socket", ""))
        except libvirt.libvirtError as exc:
            raise HostError("list the domains' disks", str(exc)) from exc
        return out

    def observe(self, name: str) -> DomainQos | None:
        dom = self._lookup(name)
        if dom is None or not self._active(dom):
            return None
        live = libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            params = dom.schedulerParametersFlags(live)
            iotune = []
            for target in self._targets(dom):
                values = dom.blockIoTune(target, live)
                iotune.append((target, tuple(sorted((k, int(values[k])) for k in IOTUNE_KEYS))))
        except libvirt.libvirtError as exc:
            raise HostError(f"read domain {name}", str(exc)) from exc
        scheduler = {k: int(params[k]) for k in SCHEDULER_KEYS if k in params}
        if scheduler.get("vcpu_quota", 0) > NO_QUOTA_ABOVE:
            # cgroup v2's "max" comes back as ULLONG_MAX / 1000 (vircgroupv2.c): no quota.
            scheduler["vcpu_quota"] = LIBVIRT_UNLIMITED_QUOTA
        return DomainQos(name, "", tuple(sorted(scheduler.items())), tuple(sorted(iotune)))

    def apply(self, desired: DomainQos) -> None:
        dom = self._lookup(desired.name)
        if dom is None or not self._active(dom):
            raise HostError(f"re-tune {desired.name}", "the domain does not run")
        try:
            self._attach_detach(dom, desired)
            # Live first, then the persistent definition (libvirt refuses both in one call
            # for the scheduler), so a restarted domain keeps the values.
            for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
                dom.setSchedulerParametersFlags(dict(desired.scheduler), flags)
                for target, values in desired.iotune:
                    dom.setBlockIoTune(target, dict(values), flags)
        except libvirt.libvirtError as exc:
            raise _libvirt_failure(f"re-tune {desired.name}", exc) from exc

    def remove(self, name: str) -> None:
        """The domain if it is the agent's, and its images either way (a domain undefined
        behind the agent's back, or one whose definition failed, leaves them)."""
        dom = self._lookup(name)
        if dom is not None and self._ours(dom):
            try:
                if self._active(dom):
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError as exc:
                raise HostError(f"remove domain {name}", str(exc)) from exc
        for image in self._images_of(name):
            image.unlink()

    def _images_of(self, name: str) -> list[Path]:
        return [p for p in self.images.glob(f"{name}-*.raw") if p.name.rsplit("-", 1)[0] == name]

    def names(self) -> set[str]:
        """The agent's domains, and the names that only have images left."""
        try:
            domains = self._conn().listAllDomains(0)
        except libvirt.libvirtError as exc:
            raise HostError("list domains", str(exc)) from exc
        leftovers = {p.name.rsplit("-", 1)[0] for p in self.images.glob("*-*.raw")}
        return {dom.name() for dom in domains if self._ours(dom)} | leftovers

    def remove_everything(self) -> None:
        for name in sorted(self.names()):
            self.remove(name)

    def read_domain(self, name: str, uuid: str = "") -> HostDomain | None:
        """Any running domain `name`, or else of `uuid` (Nova's domain UUID is the server's
        id; its name may not be readable), the agent's or not (reading is all this does),
        as the host holds it: its live XML and the live API values of each disk's iotune,
        each interface's bandwidth and the scheduler. None when no such domain runs."""
        dom = self._lookup(name)
        if dom is None and uuid:
            try:
                dom = self._conn().lookupByUUIDString(uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise HostError(f"look up domain {uuid}", str(exc)) from exc
        if dom is None or not self._active(dom):
            return None
        live = libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            xml = dom.XMLDesc(0)
            root = ET.fromstring(xml)
            iotune = {}
            for target in self._targets(dom):
                values = dom.blockIoTune(target, live)
                iotune[target] = {k: int(values[k]) for k in INSPECTED_IOTUNE if k in values}
            interfaces = {}
            for element in root.findall("devices/interface/target"):
                tap = element.get("dev", "")
                values = dom.interfaceParameters(tap, live)
                interfaces[tap] = {
                    f"{way}.{attribute}": int(values[f"{way}.{attribute}"])
                    for way in ("inbound", "outbound")
                    for attribute in BANDWIDTH_ATTRIBUTES
                    if f"{way}.{attribute}" in values
                }
            scheduler = {k: int(v) for k, v in dom.schedulerParametersFlags(live).items()}
        except libvirt.libvirtError as exc:
            raise HostError(f"read domain {name}", str(exc)) from exc
        return HostDomain(xml, iotune, interfaces, scheduler)

    def qemu_pid(self, name: str) -> int:
        """The QEMU process of the running domain `name`: the thread group of its first
        vCPU thread, which QEMU names in `query-cpus-fast` (whichever libvirtd runs it)."""
        dom = self._lookup(name)
        if dom is None or not self._active(dom):
            raise HostError(f"QEMU of {name}", "the domain does not run")
        try:
            answer = libvirt_qemu.qemuMonitorCommand(dom, '{"execute": "query-cpus-fast"}', 0)
            thread = int(json.loads(answer)["return"][0]["thread-id"])
            status = Path(f"/proc/{thread}/status").read_text()
        except (libvirt.libvirtError, OSError, ValueError, KeyError, IndexError) as exc:
            raise HostError(f"QEMU of {name}", str(exc)) from exc
        found = re.search(r"^Tgid:\s*(\d+)", status, re.MULTILINE)
        if found is None:
            raise HostError(f"QEMU of {name}", f"no Tgid for thread {thread}")
        return int(found.group(1))

    def agent(self, name: str) -> GuestAgent:
        """The guest agent of the running domain `name` (a real guest's)."""
        dom = self._lookup(name)
        if dom is None or not self._active(dom):
            raise HostError(f"guest agent of {name}", "the domain does not run")
        return GuestAgent(LibvirtAgentTransport(dom))

    def disk_rate(
        self, name: str, target: str, op: str, request_bytes: int, count: int, warmup: int = 0
    ) -> DiskRate:
        """`count` `op` requests through the guest's disk device (QEMU's HMP `qemu-io -d`
        on the device's qdev path, so they pass the device's throttle), in one monitor
        round trip each; no guest OS needed. The clock starts after the first `warmup`
        requests: what QEMU's bucket (a tenth of a second of the limit, plus the request
        that overfills it) lets through at once is not the sustained rate."""
        dom = self._lookup(name)
        if dom is None:
            raise HostError(f"measure {name}", "no such domain")
        alias = self._alias(dom, target)
        start = time.monotonic()
        try:
            for i in range(warmup + count):
                if i == warmup:
                    start = time.monotonic()
                offset = (i * request_bytes) % (IMAGE_BYTES - request_bytes)
                libvirt_qemu.qemuMonitorCommand(
                    dom,
                    f"qemu-io -d /machine/peripheral/{alias}/virtio-backend "
                    f'"{op} {offset} {request_bytes}"',
                    libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
                )
        except libvirt.libvirtError as exc:
            raise HostError(f"measure {name} {target}", str(exc)) from exc
        seconds = time.monotonic() - start
        return DiskRate(count / seconds, count * request_bytes / seconds, seconds)

    @staticmethod
    def _alias(dom: Any, target: str) -> str:
        root = ET.fromstring(dom.XMLDesc(0))
        for disk in root.findall("devices/disk"):
            t, alias = disk.find("target"), disk.find("alias")
            if t is not None and alias is not None and t.get("dev") == target:
                return str(alias.get("name"))
        raise HostError(f"measure {target}", "the disk has no device alias")


class LibvirtAgentTransport:
    """qemu-ga through libvirt, which holds the agent channel's socket itself."""

    def __init__(self, dom: Any) -> None:
        self.dom = dom

    def command(self, message: dict[str, Any], timeout_s: float) -> Any:
        try:
            answer = libvirt_qemu.qemuAgentCommand(
                self.dom, json.dumps(message), max(1, round(timeout_s)), 0
            )
        except libvirt.libvirtError as exc:
            raise HostError(f"guest agent {message['execute']}", str(exc)) from exc
        try:
            return json.loads(answer).get("return")
        except (ValueError, AttributeError) as exc:
            raise HostError(f"guest agent {message['execute']}", f"answered {answer!r}") from exc


KVM_PROBE_S = 20  # the guest is up in ~10 s under TCG, in ~2 s under a KVM that boots it


def kvm_boots(image: GuestImage) -> bool:
    """Whether this host's KVM boots the guest image: tried once per image and kept beside
    it. /dev/kvm opening is not enough: a PVM KVM (host-capabilities.md §11) runs the
    firmware, then hangs at "Booting from ROM" with a stock kernel. The probe has no agent
    channel, so its /init ends soon after the booted line and QEMU exits: the console is
    read once more after that."""
    verdict = image.kernel.parent / "kvm-boots"
    if verdict.exists():
        return verdict.read_text().strip() == "yes"
    console = image.kernel.parent / f".kvm-probe-{os.getpid()}.log"
    argv = [
        "qemu-system-x86_64", "-enable-kvm", "-m", str(GUEST_OS_MEMORY_KIB // 1024),
        "-display", "none", "-no-reboot", "-nodefaults", "-serial", f"file:{console}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", GUEST_CMDLINE,
    ]  # fmt: skip

    def ready() -> bool:
        return console.exists() and BOOTED_LINE in console.read_text(errors="replace")

    try:
        probe = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        raise PermanentHostError("qemu-system-x86_64", str(exc)) from exc
    try:
        deadline = time.monotonic() + KVM_PROBE_S
        while time.monotonic() < deadline and probe.poll() is None and not ready():
            time.sleep(0.2)
        booted = ready()
    finally:
        probe.kill()
        probe.wait()
        console.unlink(missing_ok=True)
    partial = verdict.with_name(f".kvm-boots.{os.getpid()}")
    partial.write_text("yes\n" if booted else "no\n")
    partial.rename(verdict)  # whole or not at all
    return booted


# --- the fake -----------------------------------------------------------------------------


@dataclass
class FakeHypervisor:
    domains: dict[str, DomainQos] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    # The volume driver whose exports a guest's volume disks read: as QEMU fails to start
    # or to hot-plug a disk whose NBD socket nobody serves, the fake refuses one not exported.
    volumes: Volumes | None = None

    def _exported(self, desired: DomainQos) -> None:
        for target, volume_id in desired.volumes:
            if self.volumes is None or self.volumes.observe(volume_id) is None:
                raise HostError(f"attach {target} to {desired.name}", "no export serves it")

    def ensure(self, desired: DomainQos, ports: Sequence[PortWire] = ()) -> None:
        self._exported(desired)
        if desired.name not in self.domains:
            self.domains[desired.name] = DomainQos(
                desired.name, "", desired.scheduler, desired.iotune, desired.volumes
            )  # defined from the plan's XML: its values at start
        self.stopped.discard(desired.name)

    def observe(self, name: str) -> DomainQos | None:
        if name in self.stopped:
            return None
        return self.domains.get(name)

    def apply(self, desired: DomainQos) -> None:
        if desired.name not in self.domains or desired.name in self.stopped:
            raise HostError(f"re-tune {desired.name}", "the domain does not run")
        self._exported(desired)
        self.domains[desired.name] = DomainQos(
            desired.name, "", desired.scheduler, desired.iotune, desired.volumes
        )

    def remove(self, name: str) -> None:
        self.domains.pop(name, None)
        self.stopped.discard(name)

    def names(self) -> set[str]:
        return set(self.domains)

    def disk_rate(
        self, name: str, target: str, op: str, request_bytes: int, count: int, warmup: int = 0
    ) -> DiskRate:
        raise HostError(f"measure {name}", "an in-memory hypervisor has no disk to measure")

    @property
    def boots_guests(self) -> bool:
        return False

    def agent(self, name: str) -> GuestAgent:
        raise HostError(f"guest agent of {name}", "an in-memory hypervisor runs no guest")

    def qemu_pid(self, name: str) -> int:
        raise HostError(f"QEMU of {name}", "an in-memory hypervisor runs no QEMU")

    def sockets_in_use(self) -> set[str]:
        if self.volumes is None:
            return set()
        return {self.volumes.socket(v) for d in self.domains.values() for _, v in d.volumes}
