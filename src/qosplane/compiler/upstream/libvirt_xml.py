"""The libvirt domain XML Nova's libvirt driver defines, in the seed's shape.

QoS elements follow Nova exactly:
- `<cputune>`: shares, quota, period (LibvirtConfigGuestCPUTune.format_dom); emitted only
  when set. Liberty..Yoga always set shares = 1024 * vCPUs (HostFacts.nova_shares_default).
- `<iotune>` per disk in LibvirtConfigGuestDisk._format_iotune order; 0 is emitted.
- `<bandwidth>` when inbound or outbound average is set, `<inbound>`/`<outbound>` each only
  with an average, attributes average, peak, burst (LibvirtConfigGuestInterface.format_dom);
  never on vhost-user or hostdev VIFs (nova/virt/libvirt/vif.py).
Runtime-only parts of the seed's `virsh dumpxml` (domain id, aliases, PCI addresses, pty
paths, security labels) are left to libvirt, as in the XML Nova defines.
"""

from __future__ import annotations

from qosplane.compiler.upstream.topology import DiskWiring, PortWiring
from qosplane.model.flavor import CpuTune, VifLimit
from qosplane.model.host_facts import HostFacts, NovaSharesDefault
from qosplane.model.instance import Instance
from qosplane.model.units import bytes_per_s_to_kilobytes_per_s, bytes_to_kibibytes

# IoTune field -> libvirt element, in Nova's order.
IOTUNE_ELEMENTS: dict[str, str] = {
    "read_bytes_per_s": "read_bytes_sec",
    "read_iops": "read_iops_sec",
    "write_bytes_per_s": "write_bytes_sec",
    "write_iops": "write_iops_sec",
    "total_bytes_per_s": "total_bytes_sec",
    "total_iops": "total_iops_sec",
    "read_bytes_per_s_max": "read_bytes_sec_max",
    "write_bytes_per_s_max": "write_bytes_sec_max",
    "total_bytes_per_s_max": "total_bytes_sec_max",
    "read_iops_max": "read_iops_sec_max",
    "write_iops_max": "write_iops_sec_max",
    "total_iops_max": "total_iops_sec_max",
    "size_iops_bytes": "size_iops_sec",
}

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})


def esc(text: str) -> str:
    return text.translate(_ESCAPES)


def effective_cputune(cpu: CpuTune, vcpus: int, facts: HostFacts) -> CpuTune:
    """The cputune Nova writes: the flavor's, plus the era's default shares."""
    if cpu.shares is None and facts.nova_shares_default is NovaSharesDefault.PER_VCPU_1024:
        return CpuTune(shares=1024 * vcpus, quota_us=cpu.quota_us, period_us=cpu.period_us)
    return cpu


def cputune_xml(cpu: CpuTune) -> list[str]:
    if cpu.shares is None and cpu.quota_us is None and cpu.period_us is None:
        return []
    out = ["  <cputune>"]
    if cpu.shares is not None:
        out.append(f"    <shares>{cpu.shares}</shares>")
    if cpu.quota_us is not None:
        out.append(f"    <quota>{cpu.quota_us}</quota>")
    if cpu.period_us is not None:
        out.append(f"    <period>{cpu.period_us}</period>")
    out.append("  </cputune>")
    return out


def iotune_xml(disk: DiskWiring, indent: str = "      ") -> list[str]:
    items = disk.iotune.items()
    if not items:
        return []
    out = [f"{indent}<iotune>"]
    for field, value in items:
        name = IOTUNE_ELEMENTS[field]
        out.append(f"{indent}  <{name}>{value}</{name}>")
    out.append(f"{indent}</iotune>")
    return out


def _rate_attrs(limit: VifLimit) -> str:
    # libvirt's own units: kB/s for average/peak, KiB for burst. The model keeps them in
    # whole kB and KiB (VifLimit is built only from Nova's integers), so these divisions
    # are exact.
    attrs = f"average='{bytes_per_s_to_kilobytes_per_s(limit.average_bytes_per_s)}'"
    if limit.peak_bytes_per_s is not None:
        attrs += f" peak='{bytes_per_s_to_kilobytes_per_s(limit.peak_bytes_per_s)}'"
    if limit.burst_bytes is not None:
        attrs += f" burst='{bytes_to_kibibytes(limit.burst_bytes)}'"
    return attrs


def bandwidth_xml(inbound: VifLimit | None, outbound: VifLimit | None) -> list[str]:
    if inbound is None and outbound is None:
        return []
    out = ["      <bandwidth>"]
    if inbound is not None:
        out.append(f"        <inbound {_rate_attrs(inbound)}/>")
    if outbound is not None:
        out.append(f"        <outbound {_rate_attrs(outbound)}/>")
    out.append("      </bandwidth>")
    return out


def _disk_xml(disk: DiskWiring) -> list[str]:
    if disk.kind == "volume":
        out = [
            "    <disk type='block' device='disk'>",
            "      <driver name='qemu' type='raw' cache='none' io='native'/>",
            f"      <source dev='{esc(disk.source_path)}'/>",
            f"      <target dev='{disk.target}' bus='virtio'/>",
            f"      <serial>{esc(disk.volume_id)}</serial>",
        ]
    else:
        out = [
            "    <disk type='file' device='disk'>",
            f"      <driver name='qemu' type='{disk.source_format}' cache='none'/>",
            f"      <source file='{esc(disk.source_path)}'/>",
            f"      <target dev='{disk.target}' bus='virtio'/>",
        ]
    out += iotune_xml(disk)
    out.append("    </disk>")
    return out


def _interface_xml(
    wiring: PortWiring, inbound: VifLimit | None, outbound: VifLimit | None
) -> list[str]:
    port = wiring.port
    if wiring.libvirt_type == "hostdev":
        return [
            "    <interface type='hostdev' managed='yes'>",
            f"      <mac address='{esc(port.mac)}'/>",
            "    </interface>",
        ]
    if wiring.libvirt_type == "vhostuser":
        return [
            "    <interface type='vhostuser'>",
            f"      <mac address='{esc(port.mac)}'/>",
            "      <source type='unix' path='/var/run/openvswitch/"
            f"{esc(wiring.guest_device)}' mode='server'/>",
            "      <model type='virtio'/>",
            "    </interface>",
        ]
    out = [
        f"    <interface type='{wiring.libvirt_type}'>",
        f"      <mac address='{esc(port.mac)}'/>",
    ]
    if wiring.libvirt_type == "bridge":
        out.append(f"      <source bridge='{esc(wiring.source_bridge)}'/>")
    elif wiring.libvirt_type == "direct":
        out.append("      <source dev='sriov-vf' mode='passthrough'/>")
    if wiring.virtualport_ovs:
        out += [
            "      <virtualport type='openvswitch'>",
            f"        <parameters interfaceid='{esc(port.id)}'/>",
            "      </virtualport>",
        ]
    if wiring.nova_writes_bandwidth:
        out += bandwidth_xml(inbound, outbound)
    if wiring.libvirt_type != "direct":
        out.append(f"      <target dev='{esc(wiring.guest_device)}'/>")
    out.append("      <model type='virtio'/>")
    out.append("    </interface>")
    return out


def _metadata_xml(instance: Instance, facts: HostFacts) -> list[str]:
    """Nova's <nova:instance> metadata (nova/virt/libvirt/config.py, LibvirtConfigGuestMetaNova*)."""
    flavor = instance.flavor
    return [
        "  <metadata>",
        '    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.0">',
        f'      <nova:package version="{esc(facts.nova_version)}"/>',
        f"      <nova:name>{esc(instance.display_name)}</nova:name>",
        f"      <nova:creationTime>{esc(instance.creation_time)}</nova:creationTime>",
        f'      <nova:flavor name="{esc(flavor.name)}">',
        f"        <nova:memory>{flavor.ram_mb}</nova:memory>",
        f"        <nova:disk>{flavor.disk_gb}</nova:disk>",
        f"        <nova:swap>{flavor.swap_mb}</nova:swap>",
        f"        <nova:ephemeral>{flavor.ephemeral_gb}</nova:ephemeral>",
        f"        <nova:vcpus>{flavor.vcpus}</nova:vcpus>",
        "      </nova:flavor>",
        "      <nova:owner>",
        f'        <nova:user uuid="{esc(instance.user_id)}">{esc(instance.user_name)}</nova:user>',
        f'        <nova:project uuid="{esc(instance.project_id)}">'
        f"{esc(instance.project_name)}</nova:project>",
        "      </nova:owner>",
        f'      <nova:root type="image" uuid="{esc(instance.image_id)}"/>',
        "    </nova:instance>",
        "  </metadata>",
    ]


def _platform_xml(facts: HostFacts, uuid: str, vcpus: int) -> list[str]:
    """The partition, SMBIOS, OS, features, CPU and clock Nova's driver writes."""
    return [
        "  <resource>",
        "    <partition>/machine</partition>",
        "  </resource>",
        "  <sysinfo type='smbios'>",
        "    <system>",
        "      <entry name='manufacturer'>OpenStack Foundation</entry>",
        "      <entry name='product'>OpenStack Compute</entry>",
        f"      <entry name='version'>{esc(facts.nova_version)}</entry>",
        f"      <entry name='uuid'>{uuid}</entry>",
        "      <entry name='family'>Virtual Machine</entry>",
        "    </system>",
        "  </sysinfo>",
        "  <os>",
        f"    <type arch='x86_64' machine='{esc(facts.machine_type)}'>hvm</type>",
        "    <boot dev='hd'/>",
        "    <smbios mode='sysinfo'/>",
        "  </os>",
        "  <features>",
        "    <acpi/>",
        "    <apic/>",
        "  </features>",
        "  <cpu mode='host-model' check='partial'>",
        f"    <topology sockets='{vcpus}' cores='1' threads='1'/>",
        "  </cpu>",
        "  <clock offset='utc'>",
        "    <timer name='pit' tickpolicy='delay'/>",
        "    <timer name='rtc' tickpolicy='catchup'/>",
        "    <timer name='hpet' present='no'/>",
        "  </clock>",
        "  <on_poweroff>destroy</on_poweroff>",
        "  <on_reboot>restart</on_reboot>",
        "  <on_crash>destroy</on_crash>",
        "  <devices>",
        f"    <emulator>{esc(facts.emulator)}</emulator>",
    ]


def _console_and_devices_tail(facts: HostFacts, uuid: str) -> list[str]:
    """The serial console, input, graphics, video and balloon devices, and the closing tags."""
    return [
        "    <serial type='pty'>",
        f"      <log file='{esc(facts.instances_path)}/{uuid}/console.log' append='off'/>",
        "      <target port='0'/>",
        "    </serial>",
        "    <console type='pty'>",
        f"      <log file='{esc(facts.instances_path)}/{uuid}/console.log' append='off'/>",
        "      <target type='serial' port='0'/>",
        "    </console>",
        "    <input type='tablet' bus='usb'/>",
        "    <input type='mouse' bus='ps2'/>",
        "    <input type='keyboard' bus='ps2'/>",
        "    <graphics type='vnc' autoport='yes' listen='0.0.0.0' keymap='en-us'/>",
        "    <video>",
        "      <model type='cirrus' vram='16384' heads='1' primary='yes'/>",
        "    </video>",
        "    <memballoon model='virtio'>",
        "      <stats period='10'/>",
        "    </memballoon>",
        "  </devices>",
        "</domain>",
    ]


def domain_xml(
    instance: Instance,
    facts: HostFacts,
    ports: tuple[PortWiring, ...],
    disks: tuple[DiskWiring, ...],
) -> str:
    flavor = instance.flavor
    memory_kib = flavor.ram_mb * 1024
    uuid = esc(instance.uuid)
    qos = flavor.qos
    lines = [
        f"<domain type='{facts.virt_type}'>",
        f"  <name>{esc(instance.name)}</name>",
        f"  <uuid>{uuid}</uuid>",
        *_metadata_xml(instance, facts),
        f"  <memory unit='KiB'>{memory_kib}</memory>",
        f"  <currentMemory unit='KiB'>{memory_kib}</currentMemory>",
        f"  <vcpu placement='static'>{flavor.vcpus}</vcpu>",
    ]
    lines += cputune_xml(effective_cputune(qos.cpu, flavor.vcpus, facts))
    lines += _platform_xml(facts, uuid, flavor.vcpus)
    for disk in disks:
        lines += _disk_xml(disk)
    lines += [
        "    <controller type='usb' index='0' model='piix3-uhci'/>",
        "    <controller type='pci' index='0' model='pci-root'/>",
    ]
    for wiring in ports:
        lines += _interface_xml(wiring, qos.vif_inbound, qos.vif_outbound)
    lines += _console_and_devices_tail(facts, uuid)
    return "\n".join(lines) + "\n"
