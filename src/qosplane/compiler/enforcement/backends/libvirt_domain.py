"""The libvirt domain backend: a plan's CPU and image-disk limits as the running domain's
`<cputune>` and `<iotune>`, re-tuned live through the libvirt API; and the plan's domain as
this host can run it, for the libvirt instance driver.

The plan's `domain_xml` is what Nova would define on the seed's compute host. Started here
it keeps everything QoS is made of (`<cputune>`, each disk's `<iotune>`, the `/machine`
partition, the Nova metadata) and changes only what this host cannot provide:

- `type`: kvm where /dev/kvm works, else qemu (TCG); `machine='pc'` (the seed's
  `pc-i440fx-rhel7.4.0` exists only in RHEL's QEMU); the seed's emulator path;
- the guest CPU model block (TCG cannot provide a host-model CPU), graphics, and the
  serial/console logs under Nova's instances path;
- memory, down to what a guest without an OS needs;
- the image disk's source: a local image file (its `<iotune>` is kept);
- each volume's disk, for a real guest: a network disk on the volume's NBD export (its
  serial and `<iotune>` are kept, and re-tuned live); without a guest the volume is left
  to the volume driver's export;
- the interfaces: libvirt applies `<bandwidth>` with sfq and `tc police`, which this
  kernel lacks (host-capabilities.md §5: `virsh start` fails); the taps stay with the
  agent's network driver, which enforces the same limits;
- `<seclabel type='none'/>`: the agent's own libvirtd runs without a security driver.

Pure: text in, text out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from qosplane.compiler.enforcement.backends.cgroups import CPU_KINDS, record_cpu
from qosplane.compiler.enforcement.base import Claim, Decision, Desired
from qosplane.model.host_state import (
    CGROUP_V1_DEFAULT_SHARES,
    CGROUP_V2_DEFAULT_WEIGHT,
    LIBVIRT_DEFAULT_PERIOD_US,
    LIBVIRT_UNLIMITED_QUOTA,
    Capabilities,
    DomainQos,
    Mechanism,
)
from qosplane.model.plan import DiskBytes, DiskIops, HostPlan
from qosplane.model.units import Kibibytes

# libvirt <iotune> elements qosplane re-tunes live, as virDomainSetBlockIoTune names them:
# the rates and their `*_max` bursts (Nova's tune_opts, nova/virt/libvirt/volume/volume.py;
# the `*_max_length` QEMU then defaults to 1 s: Nova passes none).
IOTUNE_KEYS = tuple(
    f"{direction}_{unit}{peak}"
    for peak in ("", "_max")
    for unit in ("bytes_sec", "iops_sec")
    for direction in ("total", "read", "write")
)


@dataclass(frozen=True, slots=True)
class GuestBoot:
    """A direct kernel boot of qosplane's guest image (host/guest_image.py)."""

    kernel: str
    initrd: str
    cmdline: str


AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass(frozen=True, slots=True)
class HostNic:
    """Where a guest NIC's tap goes on this host, and the MAC its port has (the guest
    configures the NIC it finds with that MAC)."""

    bridge: str
    mac: str
    mtu_bytes: int = 1500  # the port's: the bridge's and the tap's, and the guest's NIC


@dataclass(frozen=True, slots=True)
class DomainHost:
    virt_type: str  # kvm or qemu
    emulator: str
    memory_kib: Kibibytes
    images: Mapping[str, str]  # disk target (vda) -> image file on this host
    owner: str = ""  # recorded in <metadata> so an agent lists only the domains it defined
    # A real guest: its kernel boot, and each NIC's tap -> the bridge it joins here. With
    # no boot the domain runs firmware only and its NICs stay with the network driver.
    boot: GuestBoot | None = None
    interfaces: Mapping[str, HostNic] = field(default_factory=dict)  # by tap
    # Disk target (vdb) -> the unix socket of the volume's NBD export (host/volumes.py):
    # an attached volume becomes a network disk of the domain with its <iotune> kept.
    volumes: Mapping[str, str] = field(default_factory=dict)


OWNER_NAMESPACE = "urn:qosplane:1"
NBD_EXPORT = "vol"  # the export name host/volumes.py gives every volume


def guest_volumes(caps: Capabilities) -> bool:
    """Volumes are disks of the guest only where something exports them to it."""
    return caps.guest_volumes and caps.qemu_storage_daemon


class LibvirtDomain:
    name = "libvirt-domain"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if not caps.libvirt:
            return None
        if claim.kind in CPU_KINDS:
            record_cpu(claim, desired)
            return Decision.applied(Mechanism.LIBVIRT_CPUTUNE.value)
        if claim.device in desired.volumes and not guest_volumes(caps):
            return None  # no guest to attach it to: the volume backend's export holds it
        if isinstance(claim.limit, DiskBytes):
            key, value = f"{claim.direction}_bytes_sec", claim.limit.bytes_per_s
            peak = claim.limit.peak_bytes_per_s
        elif isinstance(claim.limit, DiskIops):
            key, value = f"{claim.direction}_iops_sec", claim.limit.iops
            peak = claim.limit.peak_iops
        else:
            return None
        tune = desired.iotune.setdefault(claim.device, {})
        tune[key] = value
        if peak:
            tune[f"{key}_max"] = peak
        return Decision.applied(Mechanism.LIBVIRT_IOTUNE.value)


def domain(name: str, plan: HostPlan, desired: Desired, caps: Capabilities) -> DomainQos | None:
    """Every value is explicit, defaults included, so a limit removed from the flavor is
    reset live too (libvirt reports 0 for an unset iotune value, -1 for no quota)."""
    if not caps.libvirt:
        return None
    # The weight a domain gets when none is set: the kernel's default for the cgroup
    # version libvirt writes (v2's weight 100, v1's shares 1024).
    default_shares = (
        CGROUP_V2_DEFAULT_WEIGHT
        if caps.cgroup_v2_cpu and not caps.cgroup_v1_cpu
        else CGROUP_V1_DEFAULT_SHARES
    )
    scheduler = {
        "cpu_shares": desired.cpu.get("shares", default_shares),
        "vcpu_period": desired.cpu.get("cfs_period_us", LIBVIRT_DEFAULT_PERIOD_US),
        "vcpu_quota": desired.cpu.get("cfs_quota_us", LIBVIRT_UNLIMITED_QUOTA),
    }
    iotune = {
        target: desired.iotune.get(target, {})
        for target in domain_iotune(plan.domain_xml)
        if guest_volumes(caps) or target not in desired.volumes
    }
    attached = (
        tuple((t, desired.volumes[t].id) for t in sorted(desired.volumes) if t in iotune)
        if guest_volumes(caps)
        else ()
    )
    return DomainQos(
        name,
        plan.domain_xml,
        tuple(sorted(scheduler.items())),
        tuple(
            (target, tuple(sorted({k: values.get(k, 0) for k in IOTUNE_KEYS}.items())))
            for target, values in sorted(iotune.items())
        ),
        attached,
    )


def domain_iotune(plan_xml: str) -> dict[str, dict[str, int]]:
    """Disk target -> its `<iotune>` values (the keys qosplane sets), from a domain XML."""
    root = ET.fromstring(plan_xml)
    out: dict[str, dict[str, int]] = {}
    for disk in root.iter("disk"):
        target = disk.find("target")
        if target is None:
            continue
        tune = disk.find("iotune")
        values = {}
        if tune is not None:
            for key in IOTUNE_KEYS:
                element = tune.find(key)
                if element is not None and element.text:
                    values[key] = int(element.text)
        out[target.get("dev", "")] = values
    return out


def domain_shares(plan_xml: str) -> int | None:
    shares = ET.fromstring(plan_xml).find("cputune/shares")
    return int(shares.text) if shares is not None and shares.text else None


def host_domain_xml(plan_xml: str, host: DomainHost) -> str:
    """`plan_xml` adapted to this host (see the module docstring for every change)."""
    root = ET.fromstring(plan_xml)
    root.set("type", host.virt_type)
    root.attrib.pop("id", None)
    for tag in ("memory", "currentMemory"):
        element = root.find(tag)
        if element is not None:
            element.set("unit", "KiB")
            element.text = str(host.memory_kib)
    os_type = root.find("os/type")
    if os_type is not None:
        os_type.set("machine", "pc")
    cpu = root.find("cpu")
    if cpu is not None:
        root.remove(cpu)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    emulator = devices.find("emulator")
    if emulator is None:
        emulator = ET.SubElement(devices, "emulator")
    emulator.text = host.emulator
    if host.boot is not None:
        _boot(root, host.boot)
    for element in list(devices):
        if element.tag == "interface" and _bridged(element, host.interfaces):
            continue
        if element.tag in ("interface", "graphics", "serial", "console", "video", "channel"):
            devices.remove(element)
        elif element.tag == "disk":
            target = element.find("target")
            dev = target.get("dev", "") if target is not None else ""
            if dev in host.volumes:
                _volume_disk(element, host.volumes[dev])
                continue
            image = host.images.get(dev)
            if image is None:
                devices.remove(element)  # a volume: exported by the volume driver instead
                continue
            serial = element.findtext("serial") or dev
            element.set("type", "file")
            element.set("device", "disk")
            for child in list(element):
                if child.tag in ("source", "driver", "auth", "serial", "address"):
                    element.remove(child)
            # cache='none' needs O_DIRECT, which not every state directory's filesystem has.
            element.insert(0, ET.Element("driver", name="qemu", type="raw", cache="writeback"))
            element.insert(1, ET.Element("source", file=image))
            # The guest finds each disk by its serial (/sys/block/vd*/serial): an image
            # disk, which Nova gives none, gets its target's name.
            ET.SubElement(element, "serial").text = serial
    if host.boot is not None:
        # The guest's console on a pty (`virsh console`), and qemu-ga's channel (libvirt
        # picks the socket's path and connects to it itself: qemuAgentCommand).
        ET.SubElement(ET.SubElement(devices, "serial", type="pty"), "target", port="0")
        channel = ET.SubElement(devices, "channel", type="unix")
        ET.SubElement(channel, "source", mode="bind")
        ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    if host.owner:
        metadata = root.find("metadata")
        if metadata is None:
            metadata = ET.SubElement(root, "metadata")
        ET.SubElement(metadata, f"{{{OWNER_NAMESPACE}}}owner").text = host.owner
    for old in root.findall("seclabel"):
        root.remove(old)
    ET.SubElement(root, "seclabel", type="none")
    return ET.tostring(root, encoding="unicode")


def _volume_disk(disk: ET.Element, socket: str) -> None:
    """A plan's volume disk (Nova's block device of an iSCSI or RBD attachment) as a
    network disk on the volume's NBD export; its target, serial (the volume id, as Nova
    writes it) and <iotune> stay. cache='none', as Nova attaches volumes: the guest's
    reads reach the export, not the host's page cache."""
    disk.set("type", "network")
    disk.set("device", "disk")
    for child in list(disk):
        if child.tag in ("source", "driver", "auth", "address"):
            disk.remove(child)
    disk.insert(0, ET.Element("driver", name="qemu", type="raw", cache="none"))
    source = ET.Element("source", protocol="nbd", name=NBD_EXPORT)
    ET.SubElement(source, "host", transport="unix", socket=socket)
    disk.insert(1, source)


def volume_disk_xml(plan_xml: str, target: str, socket: str) -> str:
    """The `<disk>` of the plan's volume at `target` on its export, for a live attach."""
    for disk in ET.fromstring(plan_xml).iter("disk"):
        found = disk.find("target")
        if found is not None and found.get("dev") == target:
            _volume_disk(disk, socket)
            disk.tail = None
            return ET.tostring(disk, encoding="unicode")
    raise ValueError(f"the plan's domain has no disk {target}")


def _boot(root: ET.Element, boot: GuestBoot) -> None:
    os_element = root.find("os")
    if os_element is None:
        os_element = ET.SubElement(root, "os")
    for tag in ("kernel", "initrd", "cmdline", "boot"):
        for old in os_element.findall(tag):
            os_element.remove(old)
    ET.SubElement(os_element, "kernel").text = boot.kernel
    ET.SubElement(os_element, "initrd").text = boot.initrd
    ET.SubElement(os_element, "cmdline").text = boot.cmdline


def _bridged(interface: ET.Element, nics: Mapping[str, HostNic]) -> bool:
    """Rewrites a plan interface whose tap joins a bridge here into a plain bridge port of
    that bridge (True); False for one this host does not wire (it is removed). libvirt's
    `<bandwidth>` goes: it needs sfq and `tc police`, which this kernel lacks; the agent
    shapes the tap instead. Nova's hybrid `qbr` bridge becomes the host's network bridge."""
    target = interface.find("target")
    tap = target.get("dev", "") if target is not None else ""
    nic = nics.get(tap)
    if nic is None:
        return False
    interface.set("type", "bridge")
    for child in list(interface):
        if child.tag != "target":
            interface.remove(child)
    interface.insert(0, ET.Element("mac", address=nic.mac))
    interface.insert(1, ET.Element("source", bridge=nic.bridge))
    # virtio: the only NIC driver the guest image carries. <mtu> sets the tap's MTU and
    # virtio's host_mtu, which the guest's virtio_net takes as its own.
    ET.SubElement(interface, "model", type="virtio")
    ET.SubElement(interface, "mtu", size=str(nic.mtu_bytes))
    return True
