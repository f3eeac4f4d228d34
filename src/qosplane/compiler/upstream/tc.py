"""The tc commands libvirt runs for a VIF's `<bandwidth>` (virNetDevBandwidthSet).

Order: clear root and ingress (errors ignored), then for the device's TX side an HTB root
with one class, an sfq leaf and a fw filter; for its RX side an ingress qdisc and a u32
police filter. With swapped=True (bridge/network taps) TX carries `<inbound>` and RX
`<outbound>`; with swapped=False (direct, ethernet) the other way round. An HTB is added
only when the TX average is non-zero; the police is added whenever RX exists.
Units as libvirt writes them: rates in tc `kbps` (kilobytes/s), sizes in `kb` (KiB).
"""

from __future__ import annotations

from dataclasses import dataclass

from qosplane.compiler.upstream.topology import PortWiring
from qosplane.model.flavor import FlavorQos, VifLimit
from qosplane.model.host_facts import LibvirtBandwidthBackend
from qosplane.model.units import (
    Bytes,
    BytesPerSecond,
    Kibibytes,
    KilobytesPerSecond,
    bytes_per_s_to_kilobytes_per_s,
    bytes_to_kibibytes,
    libvirt_default_police_burst,
    libvirt_htb_quantum_bytes,
    tc_rate_kbps,
    tc_size_kb,
)

Argv = list[str]


@dataclass(frozen=True, slots=True)
class DeviceSides:
    """The flavor limits as libvirt maps them onto the device's own TX and RX."""

    tx: VifLimit | None  # root HTB: packets the host sends out of this device
    rx: VifLimit | None  # ingress police: packets the host receives on this device


def device_sides(wiring: PortWiring, qos: FlavorQos) -> DeviceSides:
    if wiring.swapped:
        return DeviceSides(tx=qos.vif_inbound, rx=qos.vif_outbound)
    return DeviceSides(tx=qos.vif_outbound, rx=qos.vif_inbound)


def libvirt_kbps(limit_bytes_per_s: int) -> KilobytesPerSecond:
    return bytes_per_s_to_kilobytes_per_s(BytesPerSecond(limit_bytes_per_s))


def libvirt_kib(limit_bytes: int) -> Kibibytes:
    return bytes_to_kibibytes(Bytes(limit_bytes))


def htb_class_args(limit: VifLimit) -> list[str]:
    average = libvirt_kbps(limit.average_bytes_per_s)
    args = ["rate", tc_rate_kbps(average)]
    if limit.peak_bytes_per_s is not None:
        args += ["ceil", tc_rate_kbps(libvirt_kbps(limit.peak_bytes_per_s))]
    if limit.burst_bytes is not None:
        args += ["burst", tc_size_kb(libvirt_kib(limit.burst_bytes))]
    args += ["quantum", str(libvirt_htb_quantum_bytes(average))]
    return args


def police_burst(limit: VifLimit) -> Kibibytes:
    """The RX burst libvirt uses: the given burst if non-zero, else min(average, UINT_MAX/1024)."""
    if limit.burst_bytes:
        return libvirt_kib(limit.burst_bytes)
    return libvirt_default_police_burst(libvirt_kbps(limit.average_bytes_per_s))


def libvirt_tc_commands(device: str, sides: DeviceSides) -> list[Argv]:
    dev = ["dev", device]
    cmds: list[Argv] = [
        ["tc", "qdisc", "del", *dev, "root"],
        ["tc", "qdisc", "del", *dev, "ingress"],
    ]
    tx = sides.tx
    if tx is not None and tx.average_bytes_per_s != 0:
        cmds += [
            ["tc", "qdisc", "add", *dev, "root", "handle", "1:", "htb", "default", "1"],
            [
                "tc",
                "class",
                "add",
                *dev,
                "parent",
                "1:",
                "classid",
                "1:1",
                "htb",
                *htb_class_args(tx),
            ],
            ["tc", "qdisc", "add", *dev, "parent", "1:1", "handle", "2:", "sfq", "perturb", "10"],
            [
                "tc",
                "filter",
                "add",
                *dev,
                "parent",
                "1:0",
                "protocol",
                "all",
                "prio",
                "1",
                "handle",
                "1",
                "fw",
                "flowid",
                "1",
            ],
        ]
    rx = sides.rx
    if rx is not None:
        cmds += [
            ["tc", "qdisc", "add", *dev, "ingress"],
            [
                "tc",
                "filter",
                "add",
                *dev,
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
                tc_rate_kbps(libvirt_kbps(rx.average_bytes_per_s)),
                "burst",
                tc_size_kb(police_burst(rx)),
                "mtu",
                "64kb",
                "drop",
                "flowid",
                ":1",
            ],
        ]
    return cmds


def tc_plan(ports: tuple[PortWiring, ...], qos: FlavorQos) -> dict[str, list[Argv]]:
    """For each host device libvirt shapes with tc, its commands in order."""
    plan: dict[str, list[Argv]] = {}
    if qos.vif_inbound is None and qos.vif_outbound is None:
        return plan
    for wiring in ports:
        if (
            not wiring.nova_writes_bandwidth
            or wiring.libvirt_backend is not LibvirtBandwidthBackend.TC
        ):
            continue
        plan[wiring.guest_device] = libvirt_tc_commands(
            wiring.guest_device, device_sides(wiring, qos)
        )
    return plan
