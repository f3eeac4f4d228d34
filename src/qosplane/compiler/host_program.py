"""From a plan's effective limits to what this host enforces, and the commands that get a
device from what it shows to what it should show.

The plan says what holds on the upstream stack (libvirt's htb and police, Neutron's OVS
rows). A host agent enforces the same guest-relative limits with what its kernel has (the
probe's Capabilities), and says for each limit which mechanism it used, or why none.
Pure: no I/O; the agent observes, these functions decide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from qosplane.compiler.host_domain import domain_iotune
from qosplane.model.host_state import (
    CGROUP_V1_DEFAULT_SHARES,
    CGROUP_V2_DEFAULT_WEIGHT,
    LIBVIRT_DEFAULT_PERIOD_US,
    LIBVIRT_UNLIMITED_QUOTA,
    Capabilities,
    CpuQos,
    DeviceQos,
    DomainQos,
    InstanceQos,
    Mechanism,
    Meter,
    ObservedDevice,
    Outcome,
    OvsQueue,
    PortQos,
    RuleOutcome,
    Shaper,
    VolumeQos,
)
from qosplane.model.plan import AttachedVolume, EffectiveLimit, HostPlan, Rate
from qosplane.model.units import (
    BitsPerSecond,
    Bytes,
    Kilobits,
    bits_per_s_to_kilobits_per_s,
    bits_to_kilobits,
    bytes_to_bits,
    tc_rate_as_printed,
    tc_rate_bits,
    tc_size_bytes,
)

TO_GUEST = "ingress"
FROM_GUEST = "egress"
PFIFO_LIMIT_PACKETS = 1000  # an ifb's txqueuelen is 32: the leaf queue must not be


def default_burst_bytes(rate_bits_per_s: BitsPerSecond) -> Bytes:
    """htb's own default when no burst is given: one timer tick of the rate plus one
    frame (rate / HZ + MTU, with HZ = 1000 and a 1514-byte frame)."""
    return Bytes(rate_bits_per_s // 8 // 1000 + 1514)


def _shaper(limit: Rate, policer: bool) -> Shaper:
    cap = BitsPerSecond(limit.rate_bits_per_s)
    burst = limit.burst_bytes
    if policer:
        # A policer has no ceil: shape at the rate, with its bucket as the burst.
        return Shaper(cap, cap, Bytes(burst) if burst else default_burst_bytes(cap))
    ceil = BitsPerSecond(limit.ceil_bits_per_s or cap)
    return Shaper(cap, ceil, Bytes(burst) if burst else default_burst_bytes(cap))


def _keep_stricter(fields: dict[str, Any], key: str, shaper: Shaper) -> None:
    """One owner per device: when a flavor quota and a Neutron rule both limit the same
    direction of a port, the host applies one shaper, the one with the lower cap."""
    current = fields.get(key)
    if current is None or shaper.ceil_bits_per_s < current.ceil_bits_per_s:
        fields[key] = shaper


_PLACEMENT_ONLY = {
    "min_bandwidth": "minimum bandwidth is a placement guarantee here; no queue enforces it",
    "min_packet_rate": "minimum packet rate is placement-only upstream as well",
}


_THROTTLE_UNIT = {"disk_bytes": ("bps", "bytes_per_s"), "disk_iops": ("iops", "iops")}
_IOTUNE_UNIT = {"disk_bytes": ("bytes_sec", "bytes_per_s"), "disk_iops": ("iops_sec", "iops")}
IOTUNE_DIRECTIONS = ("total", "read", "write")


def host_program(
    plan: HostPlan | Mapping[str, Any],
    caps: Capabilities,
    volumes: Sequence[AttachedVolume | Mapping[str, Any]] = (),
) -> tuple[InstanceQos, tuple[RuleOutcome, ...]]:
    """The instance's desired host state and one outcome per effective limit of `plan`.
    `volumes`: the attached volumes as the watch lists them. Either may come in their JSON
    form, as the plan command and the tests hold them; they are typed here."""
    if not isinstance(plan, HostPlan):
        plan = HostPlan.from_json(plan)
    attached = [
        v if isinstance(v, AttachedVolume) else AttachedVolume.from_json(v) for v in volumes
    ]
    name = plan.instance_name
    devices: dict[str, dict[str, Any]] = {}
    cpu: dict[str, int] = {}
    by_target = {v.device: v for v in attached}
    throttles: dict[str, dict[str, int]] = {v.device: {} for v in attached}
    iotune: dict[str, dict[str, int]] = {}  # image disk target -> libvirt iotune values
    outcomes: list[RuleOutcome] = []

    def report(entry: EffectiveLimit, outcome: Outcome, mechanism: str = "", **kw: Any) -> None:
        outcomes.append(RuleOutcome(entry.kind, device, entry.direction, outcome, mechanism, **kw))

    for entry in plan.effective:
        kind, direction = entry.kind, entry.direction
        # Upstream splits a port across tap, qvb and qvo devices; here the port is one
        # host-side device, its tap, which then carries every limit of the port.
        device = entry.device
        if entry.port_id:
            device = ("tap" + entry.port_id)[:14]
        holding = entry.effective()
        limit = holding.limit if holding is not None else None
        if limit is None:
            report(entry, Outcome.NOT_ENFORCEABLE, reason="no layer of the plan holds it")
            continue
        if kind == "bandwidth" and direction == TO_GUEST:
            if not caps.htb:
                report(entry, Outcome.NOT_ENFORCEABLE, reason="this kernel has no htb")
                continue
            assert isinstance(limit, Rate)
            _keep_stricter(devices.setdefault(device, {}), "to_instance", _shaper(limit, False))
            mechanism = Mechanism.SHAPE_OVS_HTB if caps.ovs_switch else Mechanism.SHAPE_HTB
            report(entry, Outcome.APPLIED, mechanism.value)
        elif kind == "bandwidth" and direction == FROM_GUEST:
            assert isinstance(limit, Rate)
            if caps.ovs_switch:
                _keep_stricter(
                    devices.setdefault(device, {}), "from_instance", _shaper(limit, True)
                )
                report(entry, Outcome.APPLIED, Mechanism.POLICE_OVS_METER.value, polices=True)
            elif caps.ifb_mirred and caps.htb:
                _keep_stricter(
                    devices.setdefault(device, {}), "from_instance", _shaper(limit, True)
                )
                reason = "" if caps.tc_police else "tc police is not available: shaping instead"
                report(entry, Outcome.APPLIED, Mechanism.SHAPE_IFB.value, reason=reason)
            else:
                report(
                    entry,
                    Outcome.NOT_ENFORCEABLE,
                    reason="neither ifb+mirred nor tc police is available",
                )
        elif kind == "dscp" and direction == FROM_GUEST:
            if caps.ovs_switch:
                devices.setdefault(device, {})["dscp"] = int(limit["dscp"])
                report(entry, Outcome.APPLIED, Mechanism.MARK_OVS_FLOW.value)
            elif caps.nft_bridge:
                devices.setdefault(device, {})["dscp"] = int(limit["dscp"])
                report(entry, Outcome.APPLIED, Mechanism.MARK_NFT.value)
            else:
                report(
                    entry,
                    Outcome.NOT_ENFORCEABLE,
                    reason="nftables bridge filtering is not available",
                )
        elif kind in ("cpu_shares", "cpu_quota") and caps.libvirt:
            if kind == "cpu_shares":
                cpu["shares"] = int(limit["weight"])
            else:
                cpu["cfs_quota_us"] = int(limit["quota_us"])
                cpu["cfs_period_us"] = int(limit["period_us"])
            report(entry, Outcome.APPLIED, Mechanism.LIBVIRT_CPUTUNE.value)
        elif kind in _IOTUNE_UNIT and caps.libvirt and device not in by_target:
            suffix, unit = _IOTUNE_UNIT[kind]
            iotune.setdefault(device, {})[f"{direction}_{suffix}"] = int(limit[unit])
            report(entry, Outcome.APPLIED, Mechanism.LIBVIRT_IOTUNE.value)
        elif kind == "cpu_shares":
            if caps.cgroup_v1_cpu or caps.cgroup_v2_cpu:
                cpu["shares"] = int(limit["weight"])
                report(entry, Outcome.APPLIED, _cgroup_mechanism(caps))
            else:
                report(entry, Outcome.NOT_ENFORCEABLE, reason="no cgroup cpu controller")
        elif kind == "cpu_quota":
            if caps.cgroup_v1_cpu or caps.cgroup_v2_cpu:
                cpu["cfs_quota_us"] = int(limit["quota_us"])
                cpu["cfs_period_us"] = int(limit["period_us"])
                report(entry, Outcome.APPLIED, _cgroup_mechanism(caps))
            else:
                report(entry, Outcome.NOT_ENFORCEABLE, reason="no cgroup cpu controller")
        elif kind in _PLACEMENT_ONLY:
            report(entry, Outcome.NOT_ENFORCEABLE, reason=_PLACEMENT_ONLY[kind])
        elif kind in _THROTTLE_UNIT and device in by_target and caps.qemu_storage_daemon:
            prefix, unit = _THROTTLE_UNIT[kind]
            throttles[device][f"x-{prefix}-{direction}"] = int(limit[unit])
            report(entry, Outcome.APPLIED, Mechanism.QEMU_THROTTLE.value)
        elif kind.startswith("disk"):
            report(
                entry,
                Outcome.NOT_ENFORCEABLE,
                reason="no qemu-storage-daemon on this host"
                if device in by_target
                else "a netns instance has no image disk: only volumes are exported",
            )
        else:
            report(entry, Outcome.NOT_ENFORCEABLE, reason=f"no mechanism for {kind} {direction}")
    qos = InstanceQos(
        volumes=tuple(
            VolumeQos(by_target[t].id, t, by_target[t].size_gb, tuple(sorted(throttles[t].items())))
            for t in sorted(by_target)
        )
        if caps.qemu_storage_daemon
        else (),
        name=name,
        devices=()
        if caps.ovs_switch
        else tuple(DeviceQos(device=d, **fields) for d, fields in sorted(devices.items())),
        ports=tuple(_port_qos(d, fields) for d, fields in sorted(devices.items()))
        if caps.ovs_switch
        else (),
        # Every instance has its group where the controller exists: exec joins it, and a
        # limit removed from the flavor is reset to the kernel's default there.
        cpu=CpuQos(group=name, **cpu, v2=not caps.cgroup_v1_cpu)
        if (caps.cgroup_v1_cpu or caps.cgroup_v2_cpu) and not caps.libvirt
        else None,
        domain=_domain(
            name,
            plan,
            cpu,
            {
                target: iotune.get(target, {})
                for target in domain_iotune(plan.domain_xml)
                if target not in by_target  # volumes: exported by the volume driver
            },
            # The weight a domain gets when none is set: the kernel's default for the
            # cgroup version libvirt writes (v2's weight 100, v1's shares 1024).
            CGROUP_V2_DEFAULT_WEIGHT
            if caps.cgroup_v2_cpu and not caps.cgroup_v1_cpu
            else CGROUP_V1_DEFAULT_SHARES,
        )
        if caps.libvirt
        else None,
    )
    return qos, tuple(outcomes)


def _cgroup_mechanism(caps: Capabilities) -> str:
    if caps.cgroup_v1_cpu:
        return Mechanism.CGROUP_CPU.value
    return Mechanism.CGROUP_V2_CPU.value


def _domain(
    name: str,
    plan: HostPlan,
    cpu: Mapping[str, int],
    iotune: Mapping[str, dict[str, int]],
    default_shares: int,
) -> DomainQos:
    """Every value is explicit, defaults included, so a limit removed from the flavor is
    reset live too (libvirt reports 0 for an unset iotune value, -1 for no quota)."""
    scheduler = {
        "cpu_shares": cpu.get("shares", default_shares),
        "vcpu_period": cpu.get("cfs_period_us", LIBVIRT_DEFAULT_PERIOD_US),
        "vcpu_quota": cpu.get("cfs_quota_us", LIBVIRT_UNLIMITED_QUOTA),
    }
    keys = [f"{d}_{suffix}" for suffix, _ in _IOTUNE_UNIT.values() for d in IOTUNE_DIRECTIONS]
    return DomainQos(
        name,
        plan.domain_xml,
        tuple(sorted(scheduler.items())),
        tuple(
            (target, tuple(sorted({k: values.get(k, 0) for k in keys}.items())))
            for target, values in sorted(iotune.items())
        ),
    )


# --- Open vSwitch ------------------------------------------------------------------------

OVS_COOKIE_TAG = 0x9051  # the top 16 bits of every flow cookie the agent writes
OVS_COOKIE_MATCH = f"cookie={OVS_COOKIE_TAG << 48:#x}/0xffff000000000000"
OVS_FLOW_PRIORITY_IP = 200
OVS_FLOW_PRIORITY_ALL = 190


def ovs_queue(shaper: Shaper) -> OvsQueue:
    """The sustained rate is the cap (libvirt's root class cannot borrow up to its peak,
    so neither does this queue); the burst carries over, in bits as OVS wants it."""
    return OvsQueue(shaper.rate_bits_per_s, bytes_to_bits(shaper.burst_bytes))


def ovs_meter(shaper: Shaper) -> Meter:
    """A policer's rate and bucket as meter kbps and kbit (1000-based, rounded down, at
    least 1 kbit: OVS refuses a zero band)."""
    return Meter(
        bits_per_s_to_kilobits_per_s(shaper.rate_bits_per_s),
        max(bits_to_kilobits(bytes_to_bits(shaper.burst_bytes)), Kilobits(1)),
    )


def _port_qos(port: str, fields: Mapping[str, Any]) -> PortQos:
    to_instance, from_instance = fields.get("to_instance"), fields.get("from_instance")
    return PortQos(
        port,
        ovs_queue(to_instance) if to_instance is not None else None,
        ovs_meter(from_instance) if from_instance is not None else None,
        fields.get("dscp"),
    )


def ovs_port_cookie(port: str) -> str:
    """The cookie of a port's flows, as ovs-ofctl prints it: the agent's tag in the top 16
    bits (all its flows are found with one cookie mask) and a hash of the port name."""
    low = int.from_bytes(hashlib.blake2b(port.encode(), digest_size=6).digest(), "big")
    return f"{(OVS_COOKIE_TAG << 48) | low:#x}"


def ovs_port_flows(qos: PortQos, ofport: int) -> tuple[str, ...]:
    """A port's flows exactly as `ovs-ofctl --no-stats dump-flows` prints them (ovs-ofctl
    accepts the same text), so observed and desired compare as strings. `ofport`: the
    port's OpenFlow number, matched on and used as its meter id (unique on the bridge
    while the port exists, so meters never collide; a re-plugged port gets new ones)."""
    meter = [f"meter:{ofport}"] if qos.from_instance is not None else []
    cookie = ovs_port_cookie(qos.port)
    flows = []
    if qos.dscp is not None:
        actions = ",".join([*meter, f"set_field:{qos.dscp}->ip_dscp", "NORMAL"])
        flows.append(
            f"cookie={cookie}, priority={OVS_FLOW_PRIORITY_IP},ip,in_port={ofport} "
            f"actions={actions}"
        )
    if meter:
        flows.append(
            f"cookie={cookie}, priority={OVS_FLOW_PRIORITY_ALL},in_port={ofport} "
            f"actions={meter[0]},NORMAL"
        )
    return tuple(flows)


def ovs_meter_spec(meter_id: int, meter: Meter) -> str:
    """`ovs-ofctl -O OpenFlow13 add-meter/mod-meter` argument."""
    return (
        f"meter={meter_id},kbps,burst,band=type=drop,rate={meter.rate_kilobits_per_s},"
        f"burst_size={meter.burst_kilobits}"
    )


# --- tc commands ------------------------------------------------------------------------


def _shaper_lines(dev: str, shaper: Shaper) -> list[str]:
    return [
        f"qdisc replace dev {dev} root handle 1: htb default 1",
        f"class replace dev {dev} parent 1: classid 1:1 htb "
        f"rate {tc_rate_bits(shaper.rate_bits_per_s)} ceil {tc_rate_bits(shaper.ceil_bits_per_s)} "
        f"burst {tc_size_bytes(shaper.burst_bytes)}",
        f"qdisc replace dev {dev} parent 1:1 handle 2: pfifo limit {PFIFO_LIMIT_PACKETS}",
    ]


def root_commands(
    dev: str, desired: Shaper | None, observed: Shaper | None, htb_present: bool
) -> list[str]:
    """tc batch lines taking `dev`'s root from `observed` to `desired` (none when equal).

    htb refuses `qdisc replace` of itself ("Change operation not supported"), so an
    existing htb root keeps its qdisc and only its class changes; an htb root without our
    class is deleted and rebuilt; any other root qdisc is replaced."""
    if same_shaper(desired, observed) and (desired is None) == (not htb_present):
        return []
    if desired is None:
        return [f"qdisc del dev {dev} root"] if htb_present else []
    lines = _shaper_lines(dev, desired)
    if htb_present and observed is not None:
        return [lines[1]]
    if htb_present:
        return [f"qdisc del dev {dev} root", *lines]
    return lines


def redirect_commands(
    dev: str, ifb: str, wanted: bool, current: str | None, ingress: bool
) -> list[str]:
    """The ingress qdisc and u32 filter that steer everything `dev` receives (what the
    instance sends) to `ifb`. Anything else on the ingress (no filter, a filter to a
    deleted or other device) is replaced whole."""
    if (wanted and current == ifb) or (not wanted and not ingress):
        return []
    lines = [f"qdisc del dev {dev} ingress"] if ingress else []
    if wanted:
        lines += [
            f"qdisc add dev {dev} handle ffff: ingress",
            f"filter add dev {dev} parent ffff: protocol all prio 1 u32 match u32 0 0 "
            f"action mirred egress redirect dev {ifb}",
        ]
    return lines


def same_shaper(desired: Shaper | None, observed: Shaper | None) -> bool:
    """Equal as tc reads back: rates exactly as tc prints the desired ones (it divides by
    1000 with truncation), bursts within 2% or 2 KiB (htb keeps a burst as a time at the
    rate and tc prints sizes rounded to KiB or MiB)."""
    if desired is None or observed is None:
        return desired is observed
    burst_gap = abs(desired.burst_bytes - observed.burst_bytes)
    return (
        tc_rate_as_printed(desired.rate_bits_per_s) == observed.rate_bits_per_s
        and tc_rate_as_printed(desired.ceil_bits_per_s) == observed.ceil_bits_per_s
        and burst_gap <= max(0.02 * max(desired.burst_bytes, observed.burst_bytes), 2048)
    )


def device_commands(desired: DeviceQos, observed: ObservedDevice) -> list[str]:
    """Every tc line for one device and its ifb; empty when the device is converged."""
    lines = root_commands(
        desired.device, desired.to_instance, observed.qos.to_instance, observed.root_htb
    )
    wanted = desired.from_instance is not None
    lines += redirect_commands(
        desired.device, desired.ifb, wanted, observed.redirect_to, observed.ingress
    )
    if wanted:
        lines += root_commands(
            desired.ifb, desired.from_instance, observed.qos.from_instance, observed.ifb_root_htb
        )
    return lines


def dscp_ruleset(table: str, marks: Sequence[tuple[str, int]]) -> str:
    """One nftables bridge table marking what each tap forwards from its instance; loaded
    with `nft -f` it replaces the table atomically.

    The bridge forward hook, not netdev ingress on the tap: the tap's tc ingress redirects
    every packet to its ifb first (from-instance shaping), and a redirected packet skips
    the tap's netdev ingress hook, so a mark set there was never applied (measured)."""
    lines = [f"table bridge {table}", f"delete table bridge {table}"]
    if not marks:
        return "\n".join(lines) + "\n"
    lines.append(f"table bridge {table} {{")
    for device, dscp in sorted(marks):
        lines += [
            f"  chain {device} {{",
            "    type filter hook forward priority 0; policy accept;",
            f'    iifname "{device}" ip dscp set {dscp}',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
