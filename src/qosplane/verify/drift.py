"""Desired vs observed: every difference the agent must repair, named so an operator can
read it ("tc class rate on tap5f1c..." not "state differs")."""

from __future__ import annotations

from collections.abc import Sequence

from qosplane.compiler.enforcement.program import ovn_row_text, same_shaper
from qosplane.model.host_state import (
    CFS_DEFAULT_PERIOD_US,
    CpuQos,
    DeviceQos,
    DomainQos,
    Meter,
    ObservedDevice,
    ObservedOvnPort,
    ObservedPort,
    OvnPortQos,
    OvsQueue,
    PacketLimit,
    PortQos,
    Shaper,
    UplinkClass,
    UplinkQos,
    VolumeQos,
)
from qosplane.model.report import Drift
from qosplane.model.units import tc_rate_as_printed


def _text(shaper: Shaper | None) -> str:
    if shaper is None:
        return "none"
    return (
        f"rate {shaper.rate_bits_per_s} bit/s ceil {shaper.ceil_bits_per_s} bit/s "
        f"burst {shaper.burst_bytes} bytes"
    )


def packet_limit_aspect(to_instance: bool) -> str:
    return f"{'to' if to_instance else 'from'}-instance packet limit (nftables)"


def packet_limit_text(limit: PacketLimit | None) -> str:
    if limit is None:
        return "none"
    return f"{limit.rate_packets_per_s} packet/s, burst {limit.burst_packets} packets"


def device_drift(instance: str, desired: DeviceQos, observed: ObservedDevice) -> list[Drift]:
    if not observed.exists:
        return [Drift(instance, desired.device, "device", "present", "missing")]
    out: list[Drift] = []
    if not same_shaper(desired.to_instance, observed.qos.to_instance):
        out.append(
            Drift(
                instance,
                desired.device,
                "to-instance shaper (htb on the device)",
                _text(desired.to_instance),
                _text(observed.qos.to_instance),
            )
        )
    wanted_redirect = desired.ifb if desired.from_instance is not None else None
    if observed.redirect_to != wanted_redirect:
        out.append(
            Drift(
                instance,
                desired.device,
                "from-instance redirect (ingress u32 mirred)",
                wanted_redirect or "none",
                observed.redirect_to or "none",
            )
        )
    if desired.from_instance is not None and not same_shaper(
        desired.from_instance, observed.qos.from_instance
    ):
        out.append(
            Drift(
                instance,
                desired.ifb,
                "from-instance shaper (htb on the ifb)",
                _text(desired.from_instance),
                _text(observed.qos.from_instance),
            )
        )
    for to_instance, wanted, seen in (
        (True, desired.packets_to_instance, observed.qos.packets_to_instance),
        (False, desired.packets_from_instance, observed.qos.packets_from_instance),
    ):
        if wanted != seen:
            out.append(
                Drift(
                    instance,
                    desired.device,
                    packet_limit_aspect(to_instance),
                    packet_limit_text(wanted),
                    packet_limit_text(seen),
                )
            )
    if desired.dscp != observed.qos.dscp:
        out.append(
            Drift(
                instance,
                desired.device,
                "dscp mark (nftables)",
                str(desired.dscp),
                str(observed.qos.dscp),
            )
        )
    return out


def _queue_text(queue: OvsQueue | None) -> str:
    if queue is None:
        return "none"
    return f"max-rate {queue.max_rate_bits_per_s} bit/s burst {queue.burst_bits} bit"


def _meter_text(meter: Meter | None) -> str:
    if meter is None:
        return "none"
    return f"rate {meter.rate_kilobits_per_s} kbit/s burst {meter.burst_kilobits} kbit"


def port_drift(instance: str, desired: PortQos, observed: ObservedPort) -> list[Drift]:
    """OVS rows and OpenFlow state compare exactly: OVSDB keeps the strings the agent
    wrote and ovs-ofctl prints meters in the units they were given."""
    if not observed.exists:
        # "device": the reconciler plugs the port again before repairing its QoS.
        return [Drift(instance, desired.port, "device", "on the OVS bridge", "missing")]
    out: list[Drift] = []
    seen = observed.qos
    if desired.to_instance != seen.to_instance:
        out.append(
            Drift(
                instance,
                desired.port,
                "to-instance queue (OVS QoS linux-htb)",
                _queue_text(desired.to_instance),
                _queue_text(seen.to_instance),
            )
        )
    if desired.from_instance != seen.from_instance:
        out.append(
            Drift(
                instance,
                desired.port,
                "from-instance meter (OpenFlow 1.3)",
                _meter_text(desired.from_instance),
                _meter_text(seen.from_instance),
            )
        )
    if desired.dscp != seen.dscp:
        out.append(
            Drift(instance, desired.port, "dscp mark (OpenFlow)", str(desired.dscp), str(seen.dscp))
        )
    for side, want, have in (
        ("from", desired.packets_from_instance, seen.packets_from_instance),
        ("to", desired.packets_to_instance, seen.packets_to_instance),
    ):
        if want != have:
            out.append(
                Drift(
                    instance,
                    desired.port,
                    f"{side}-instance packet meter (OpenFlow 1.3 pktps)",
                    packet_limit_text(want),
                    packet_limit_text(have),
                )
            )
    if not observed.flows_match and not out:
        out.append(Drift(instance, desired.port, "OpenFlow flows", "as compiled", "different"))
    return out


def ovn_port_drift(instance: str, desired: OvnPortQos, observed: ObservedOvnPort) -> list[Drift]:
    """Northbound rows compare exactly: the database keeps the numbers the agent wrote.
    The meters ovn-controller makes from them are its own, reported by explain, not
    drift: the agent repairs what it writes."""
    if not observed.exists:
        return [Drift(instance, desired.port, "device", "an OVN logical switch port", "missing")]
    out: list[Drift] = []
    seen = observed.qos
    for side, want, have in (
        ("to", desired.to_instance, seen.to_instance),
        ("from", desired.from_instance, seen.from_instance),
    ):
        if want != have:
            lport = "to-lport" if side == "to" else "from-lport"
            out.append(
                Drift(
                    instance,
                    desired.port,
                    f"{side}-instance OVN QoS row ({lport} bandwidth)",
                    _meter_text(want),
                    _meter_text(have),
                )
            )
    if desired.dscp != seen.dscp:
        out.append(
            Drift(
                instance,
                desired.port,
                "dscp mark (OVN QoS row action)",
                str(desired.dscp),
                str(seen.dscp),
            )
        )
    if not observed.rows_match and not out:
        out.append(Drift(instance, desired.port, "OVN QoS rows", "as compiled", "different"))
    return out


def ovn_read_back(observed: ObservedOvnPort) -> dict[tuple[str, str], str]:
    """(kind, guest-relative direction) -> what holds it on the host: the Northbound row
    and, for a rate, the meter ovn-controller made of it (or that it made none)."""
    out: dict[tuple[str, str], str] = {}
    rows = {r.direction: r for r in observed.rows}
    to_meter, from_meter = observed.meters
    for lport, direction, meter in (
        ("to-lport", "ingress", to_meter),
        ("from-lport", "egress", from_meter),
    ):
        row = rows.get(lport)
        if row is None:
            continue
        text = f"NB QoS {ovn_row_text(row)}"
        if row.rate_kbit_per_s is not None:
            made = (
                f"ovn-controller meter kbps rate={meter.rate_kilobits_per_s}"
                + (f" burst_size={meter.burst_kilobits}" if meter.burst_kilobits else "")
                if meter is not None
                else "no ovn-controller meter with that rate on br-int"
            )
            out[("bandwidth", direction)] = f"{text}; {made}"
        if row.dscp is not None:
            out[("dscp", direction)] = text
    return out


def _uplink_text(qos: UplinkQos | None) -> str:
    if qos is None:
        return "no guarantees"
    classes = ", ".join(f"{c.mac} {c.rate_bits_per_s} bit/s" for c in qos.classes)
    return f"link {qos.capacity_bits_per_s} bit/s: {classes or 'none'}"


def _as_printed(qos: UplinkQos) -> UplinkQos:
    """What tc prints back for `qos` (rates read back can be up to 0.1% lower), its
    default class's rate included."""
    return UplinkQos(
        qos.device,
        tc_rate_as_printed(qos.capacity_bits_per_s),
        tuple(
            UplinkClass(c.minor, c.mac, tc_rate_as_printed(c.rate_bits_per_s)) for c in qos.classes
        ),
        tc_rate_as_printed(qos.default_rate_bits_per_s),
    )


def uplink_drift(
    instances: Sequence[str], desired: UplinkQos | None, observed: UplinkQos | None
) -> list[Drift]:
    """An uplink's guarantees as compiled against what tc holds, charged to each of the
    `instances` guaranteed there."""
    want = _as_printed(desired) if desired is not None else None
    if want == observed:
        return []
    device = desired.device if desired is not None else observed.device if observed else ""
    return [
        Drift(name, device, "uplink guarantees (htb)", _uplink_text(want), _uplink_text(observed))
        for name in instances
    ]


def domain_drift(instance: str, desired: DomainQos, observed: DomainQos | None) -> list[Drift]:
    """Live values as libvirt reports them against the plan's, parameter by parameter."""
    if observed is None:
        return [Drift(instance, "domain", "libvirt domain", "running", "not running")]
    out = []
    have = dict(observed.scheduler)
    for key, want in desired.scheduler:
        if have.get(key) != want:
            out.append(Drift(instance, "cpu", f"libvirt {key}", str(want), str(have.get(key))))
    seen = observed.iotune_map()
    wanted = desired.iotune_map()
    for target in sorted(set(seen) - set(wanted)):
        out.append(Drift(instance, target, "libvirt disk", "not attached", "attached"))
    for target, values in desired.iotune:
        if target not in seen:
            out.append(Drift(instance, target, "libvirt disk", "attached", "not attached"))
            continue
        current = seen[target]
        for key, want in values:
            if current.get(key) != want:
                out.append(
                    Drift(
                        instance, target, f"libvirt iotune {key}", str(want), str(current.get(key))
                    )
                )
    return out


def volume_drift(instance: str, desired: VolumeQos, observed: dict[str, int] | None) -> list[Drift]:
    if observed == desired.limits_map():
        return []
    shown = (
        "not exported"
        if observed is None
        else ",".join(f"{k}={v}" for k, v in sorted(observed.items()))
    )
    return [
        Drift(
            instance,
            desired.device,
            "volume throttle (qemu-storage-daemon)",
            ",".join(f"{k}={v}" for k, v in desired.limits) or "no limits",
            shown,
        )
    ]


def cpu_drift(instance: str, desired: CpuQos, observed: CpuQos | None) -> list[Drift]:
    """A value the plan leaves unset must be the kernel's default, so removing a limit from
    a flavor takes effect too (None quota: unlimited)."""
    if observed is None:
        return [Drift(instance, "cpu", "cgroup", desired.group, "missing")]
    names = (
        ("cpu.weight", "cpu.max quota", "cpu.max period")
        if desired.v2
        else ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")
    )
    out = []
    for key, want, have in zip(
        names,
        (
            desired.shares or desired.default_shares,
            desired.cfs_quota_us,
            desired.cfs_period_us or CFS_DEFAULT_PERIOD_US,
        ),
        (observed.shares, observed.cfs_quota_us, observed.cfs_period_us),
        strict=True,
    ):
        if want != have:
            out.append(Drift(instance, "cpu", key, str(want), str(have)))
    return out
