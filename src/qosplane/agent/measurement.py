"""`qosplane verify`: measure every limit this host applies to one server, and judge it.

What is measured follows the host program (the same one the agent applies), so a limit the
host cannot enforce is not "measured" into a pass: it keeps its not-enforceable outcome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from qosplane.agent.reconcile import ports_of
from qosplane.compiler.enforcement.program import host_program, meter_shaper
from qosplane.host import measure
from qosplane.host.cgroups import Cgroups
from qosplane.host.endpoints import Endpoint, GuestEndpoint
from qosplane.host.guest_agent import GUEST_READY_S
from qosplane.host.hypervisor import Hypervisor
from qosplane.host.instances import Instances, PortWire, scratch_wires
from qosplane.host.volumes import ALLOCATED_BYTES, Volumes
from qosplane.model.host_state import (
    CGROUP_V1_DEFAULT_SHARES,
    CGROUP_V2_DEFAULT_WEIGHT,
    Capabilities,
    CpuQos,
    DomainQos,
    InstanceQos,
    Outcome,
    PacketLimit,
    Shaper,
)
from qosplane.model.plan import DesiredServer
from qosplane.model.report import Verdict
from qosplane.model.units import (
    BitsPerSecond,
    Bytes,
    PacketsPerSecond,
    bits_to_bytes,
    dscp_to_tos,
    frames_per_s,
    kilobits_per_s_to_bits_per_s,
    kilobits_to_bits,
    udp_frame_bytes,
)
from qosplane.verify.judge import (
    judge_capacity,
    judge_disk,
    judge_exact,
    judge_packet_rate,
    judge_ratio,
    judge_throughput,
)

# (sender, receiver, receiver's address): a namespace's name, or inside a guest.
Route = tuple[str | Endpoint, str | Endpoint, str]
REFERENCE_GROUP = "reference"  # a sibling at the default weight, never an instance name
MAX_OMIT_S = 10


def omit_seconds(shaper: Shaper) -> int:
    """Seconds to skip before measuring the sustained rate: the burst drains at
    (ceil - rate), or at the rate when there is no ceil above it, plus one for TCP to ramp."""
    above = shaper.ceil_bits_per_s - shaper.rate_bits_per_s
    drain_s = shaper.burst_bytes * 8 / (above if above > 0 else shaper.rate_bits_per_s)
    return min(MAX_OMIT_S, math.ceil(drain_s) + 1)


@dataclass(frozen=True, slots=True)
class _Link:
    """One port's measurable limits, whichever mechanism holds them: (rate, seconds of
    burst to skip) per direction, and the DSCP mark."""

    device: str
    to_instance: tuple[BitsPerSecond, int] | None
    from_instance: tuple[BitsPerSecond, int] | None
    dscp: int | None
    packets_to_instance: PacketLimit | None = None
    packets_from_instance: PacketLimit | None = None


def _measured(shaper: Shaper | None) -> tuple[BitsPerSecond, int] | None:
    return (shaper.rate_bits_per_s, omit_seconds(shaper)) if shaper is not None else None


def _as_shaper(rate_bits_per_s: BitsPerSecond, burst_bytes: Bytes) -> Shaper:
    """An OVS queue or meter in the shaper's terms: a cap with no ceil above it."""
    return Shaper(rate_bits_per_s, rate_bits_per_s, burst_bytes)


def _links(qos: InstanceQos) -> list[_Link]:
    out = [
        _Link(
            d.device,
            _measured(d.to_instance),
            _measured(d.from_instance),
            d.dscp,
            d.packets_to_instance,
            d.packets_from_instance,
        )
        for d in qos.devices
    ]
    for p in qos.ports:
        queue, meter = p.to_instance, p.from_instance
        to_instance = (
            _as_shaper(queue.max_rate_bits_per_s, bits_to_bytes(queue.burst_bits))
            if queue
            else None
        )
        from_instance = (
            _as_shaper(
                kilobits_per_s_to_bits_per_s(meter.rate_kilobits_per_s),
                bits_to_bytes(kilobits_to_bits(meter.burst_kilobits)),
            )
            if meter
            else None
        )
        out.append(
            _Link(
                p.port,
                _measured(to_instance),
                _measured(from_instance),
                p.dscp,
                p.packets_to_instance,
                p.packets_from_instance,
            )
        )
    for q in qos.ovn_ports:
        out.append(
            _Link(
                q.port,
                _measured(meter_shaper(q.to_instance) if q.to_instance else None),
                _measured(meter_shaper(q.from_instance) if q.from_instance else None),
                q.dscp,
            )
        )
    return out


def _ip(cidr: str) -> str:
    return cidr.split("/", maxsplit=1)[0]


def verify_server(
    server: DesiredServer,
    caps: Capabilities,
    instances: Instances,
    cgroups: Cgroups,
    volumes: Volumes,
    seconds: int = 5,
    hypervisor: Hypervisor | None = None,
) -> list[Verdict]:
    """Measure each limit the host holds for the server: its links both ways and DSCP, its
    volumes' exports, its domain's disks and its CPU share."""
    qos, outcomes = host_program(server.plan, caps, server.volumes)
    inside: str | Endpoint = instances.namespace(qos.name)
    if hypervisor is not None and hypervisor.boots_guests and qos.domain is not None:
        agent = hypervisor.agent(qos.domain.name)
        agent.wait_ready(GUEST_READY_S)
        inside = GuestEndpoint(agent, qos.domain.name)  # measured where the tenant is
    verdicts = _network_verdicts(qos, ports_of(server), instances, inside, seconds)
    verdicts += _volume_verdicts(qos, instances, volumes, seconds)
    if qos.domain is not None and hypervisor is not None:
        guest = inside if isinstance(inside, GuestEndpoint) else None
        serials = dict(qos.domain.volumes)  # a volume's disk: its id; an image disk: target
        for target, values in qos.domain.iotune:
            peaks = dict(values)
            for key, value in values:
                if value and not key.endswith("_max"):  # a burst: timed past, not judged
                    verdicts.append(
                        _domain_disk(
                            hypervisor,
                            qos.domain.name,
                            target,
                            (key, value, peaks.get(f"{key}_max", 0)),
                            seconds,
                            (guest, serials.get(target, target)) if guest else None,
                        )
                    )
    if qos.cpu is not None and qos.cpu.shares is not None:
        verdicts.append(_cpu_verdict(qos.cpu, cgroups, seconds))
    shares_held = any(o.kind == "cpu_shares" and o.outcome is Outcome.APPLIED for o in outcomes)
    if qos.domain is not None and hypervisor is not None and shares_held:
        if isinstance(inside, GuestEndpoint):
            verdicts.append(_domain_cpu_verdict(hypervisor, qos.domain, inside, seconds))
    return verdicts


def _domain_cpu_verdict(
    hypervisor: Hypervisor, domain: DomainQos, guest: GuestEndpoint, seconds: int
) -> Verdict:
    """A real guest's cpu_shares: the guest kept busy by a loop of its own, against a
    busy loop in a group beside the domain's at the kernel's default weight."""
    shares = dict(domain.scheduler)["cpu_shares"]
    busy = guest.start(["sh", "-c", measure.BUSY_LOOP])
    try:
        ratio, v2, source = measure.domain_cpu_ratio(hypervisor.qemu_pid(domain.name), seconds)
    finally:
        busy.stop()
    default = CGROUP_V2_DEFAULT_WEIGHT if v2 else CGROUP_V1_DEFAULT_SHARES
    return judge_ratio(
        "cpu_shares",
        "cpu",
        f"{'cpu.weight' if v2 else 'cpu.shares'}={shares} vs {default}",
        shares / default,
        ratio,
        "a busy loop inside the guest against one beside the domain's group, both on one "
        f"CPU; CPU time of {source}",
    )


CAPACITY_S = 2  # each unshaped reading: long enough for TCP to fill the path


@dataclass
class _Capacity:
    """What a network's path carries without any limit, measured between two scratch ends
    plugged into it like instance ports (same bridge or OVS datapath, same CPUs, same
    moment), once per network and kind of traffic for one verify."""

    instances: Instances
    mtu_bytes: dict[str, int]  # network id -> MTU of its ports
    tcp_bits_per_s: dict[str, float] = field(default_factory=dict)
    udp_packets_per_s: dict[tuple[str, int], float] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)
    guest_tcp_bits_per_s: float | None = None

    def _path(self, network_id: str) -> tuple[str, str, str]:
        ends = scratch_wires(network_id, self.mtu_bytes[network_id])
        (sender, _), (receiver, wire) = ends
        for name, port in ends:
            if name not in self.made:
                self.made.append(name)  # before ensure: a half-made end is removed too
                self.instances.remove(name)  # what a killed verify left, made afresh
                self.instances.ensure(name, [port])
        return (
            self.instances.namespace(sender),
            self.instances.namespace(receiver),
            _ip(wire.addresses[0]),
        )

    def tcp(self, network_id: str) -> float:
        if network_id not in self.tcp_bits_per_s:
            flow = measure.throughput(*self._path(network_id), CAPACITY_S, 1)
            self.tcp_bits_per_s[network_id] = flow.received_bits_per_s
        return self.tcp_bits_per_s[network_id]

    def udp(self, network_id: str, offered: PacketsPerSecond) -> float:
        key = (network_id, offered)
        if key not in self.udp_packets_per_s:
            path = self._path(network_id)
            reading = measure.packet_rate(*path, CAPACITY_S, 1, offered)
            self.udp_packets_per_s[key] = reading.received_packets_per_s
        return self.udp_packets_per_s[key]

    def loopback(self, inside: str | Endpoint) -> float:
        """TCP over the guest's own loopback: what its CPU can move at all."""
        if self.guest_tcp_bits_per_s is None:
            flow = measure.throughput(inside, inside, "127.0.0.1", CAPACITY_S, 1)
            self.guest_tcp_bits_per_s = flow.received_bits_per_s
        return self.guest_tcp_bits_per_s

    def remove(self) -> None:
        for name in reversed(self.made):
            self.instances.remove(name)
        self.made.clear()


def _network_verdicts(
    qos: InstanceQos,
    ports: Sequence[PortWire],
    instances: Instances,
    inside: str | Endpoint,
    seconds: int,
) -> list[Verdict]:
    wires: dict[str, PortWire] = {w.tap: w for w in ports}
    capacity = _Capacity(instances, {w.network_id: w.mtu_bytes for w in ports})
    try:
        return _measure_links(qos, wires, instances, capacity, inside, seconds)
    finally:
        capacity.remove()


def _measure_links(
    qos: InstanceQos,
    wires: dict[str, PortWire],
    instances: Instances,
    capacity: _Capacity,
    ns: str | Endpoint,
    seconds: int,
) -> list[Verdict]:
    """Each link both ways between the instance (`ns`: its namespace, or inside its
    guest) and its network's probe."""
    guest = not isinstance(ns, str)
    who = "the guest, by its own iperf3" if guest else "the instance"
    verdicts: list[Verdict] = []
    for link in _links(qos):
        wire = wires.get(link.device)
        if wire is None or wire.gateway is None or not wire.addresses:
            continue
        probe = instances.probe_namespace(wire.network_id)
        mine, far = _ip(wire.addresses[0]), _ip(wire.gateway)
        net = wire.network_id
        # Each direction from the sending end to the receiving one, timed at the receiver.
        for direction, limit, packets, sender, receiver, address, where in (
            ("ingress", link.to_instance, link.packets_to_instance, probe, ns, mine, f"into {who}"),
            (
                "egress",
                link.from_instance,
                link.packets_from_instance,
                ns,
                probe,
                far,
                f"out of {who}",
            ),
        ):
            path = (sender, receiver, address)
            if limit is not None:
                carried = capacity.tcp(net)  # first, so a later run is not what it measures
                if guest:  # a TCG guest's CPU may be what binds
                    carried = min(carried, capacity.loopback(ns))
                verdict = _throughput_verdict(
                    link.device, direction, limit, wire.mtu_bytes, path, seconds, where
                )
                verdicts.append(judge_capacity(verdict, carried))
            if packets is not None:
                offered = PacketsPerSecond(2 * packets.rate_packets_per_s)
                carried = capacity.udp(net, offered)
                verdict = _packet_rate_verdict(
                    link.device, direction, packets, limit, path, seconds, where
                )
                verdicts.append(judge_capacity(verdict, carried))
        if link.dscp is not None:
            tos = measure.tos_seen(ns, probe, far)
            verdicts.append(
                judge_exact(
                    "dscp",
                    link.device,
                    "egress",
                    dscp_to_tos(link.dscp),
                    tos,
                    "TOS",
                    "tcpdump of echo requests at the far end",
                )
            )
    return verdicts


def _throughput_verdict(
    device: str,
    direction: str,
    limit: tuple[BitsPerSecond, int],
    mtu_bytes: int,
    path: Route,
    seconds: int,
    where: str,
) -> Verdict:
    """One direction of one link: TCP through it, judged against its rate. A busy host's
    CPU can only lower a reading, never lift it past the limit, so a low reading is
    measured again and the better run kept: a limit enforced too strictly is low both
    times, and one not enforced is high and judged on its first run."""
    bits_per_s, omit_s = limit
    sender, receiver, address = path

    def judged(flow: measure.Throughput, runs: str) -> Verdict:
        method = f"iperf3 TCP {flow.seconds:.0f} s {where}, receiver side{runs}"
        return judge_throughput(
            device, direction, bits_per_s, flow.received_bits_per_s, mtu_bytes, method
        )

    first = measure.throughput(sender, receiver, address, seconds, omit_s)
    verdict = judged(first, "")
    if verdict.passed or verdict.measured >= verdict.expected:
        return verdict
    again = measure.throughput(sender, receiver, address, seconds, omit_s)
    better = max(first, again, key=lambda flow: flow.received_bits_per_s)
    return judged(better, ", the better of 2 runs")


def _packet_rate_verdict(
    device: str,
    direction: str,
    limit: PacketLimit,
    bandwidth: tuple[BitsPerSecond, int] | None,
    path: Route,
    seconds: int,
    where: str,
) -> Verdict:
    """Small UDP packets offered at twice the limit: what arrives is the limit, or what a
    bandwidth limit on the same direction lets through in such frames if that is less.
    The burst drains at (offered - limit) = the limit, so burst / limit seconds (or the
    bandwidth limit's own) are skipped first."""
    rate = limit.rate_packets_per_s
    omit_s = min(MAX_OMIT_S, math.ceil(limit.burst_packets / rate) + 1)
    expected, binds = rate, ""
    if bandwidth is not None:
        frame_bytes = udp_frame_bytes(measure.UDP_PAYLOAD_BYTES)
        carried = frames_per_s(bandwidth[0], frame_bytes)
        omit_s = max(omit_s, bandwidth[1])
        if carried < rate:
            expected = carried
            binds = f"; the {bandwidth[0]} bit/s limit binds first ({frame_bytes}-byte frames)"
    reading = measure.packet_rate(*path, seconds, omit_s, PacketsPerSecond(2 * rate))
    method = (
        f"iperf3 UDP {measure.UDP_PAYLOAD_BYTES}-byte datagrams at {2 * rate} packet/s, "
        f"{reading.seconds:.0f} s {where}, received less lost{binds}"
    )
    return judge_packet_rate(
        device, direction, rate, reading.received_packets_per_s, method, expected
    )


def _volume_verdicts(
    qos: InstanceQos, instances: Instances, volumes: Volumes, seconds: int
) -> list[Verdict]:
    ns = instances.namespace(qos.name)
    verdicts: list[Verdict] = []
    for volume in qos.volumes:
        for key, value in volume.limits:
            _, unit, direction = key.split("-")  # x-iops-read, x-bps-write, x-iops-total
            op = "write" if direction == "write" else "read"
            size = 4096 if unit == "iops" else 65536
            count = max(20, int(value * seconds / (1 if unit == "iops" else size)))
            rate = measure.disk_rate(
                ns, volumes.socket(volume.volume_id), op, size, count, ALLOCATED_BYTES
            )
            measured = rate.ops_per_s if unit == "iops" else rate.bytes_per_s
            verdicts.append(
                judge_disk(
                    "disk_iops" if unit == "iops" else "disk_bytes",
                    volume.device,
                    direction,
                    value,
                    measured,
                    "IOPS" if unit == "iops" else "bytes/s",
                    f"qemu-io {count} x {op} {size} B through the NBD export, "
                    f"{rate.seconds:.1f} s, from the instance",
                )
            )
    return verdicts


def _cpu_verdict(cpu: CpuQos, cgroups: Cgroups, seconds: int) -> Verdict:
    assert cpu.shares is not None
    # A sibling at the kernel's default weight (1024 shares on v1, weight 100 on v2).
    reference = CpuQos(REFERENCE_GROUP, v2=cpu.v2)
    cgroups.apply(reference)
    try:
        ratio = measure.cpu_ratio(
            cgroups.procs_file(cpu.group), cgroups.procs_file(REFERENCE_GROUP), seconds
        )
    finally:
        cgroups.remove(REFERENCE_GROUP)
    return judge_ratio(
        "cpu_shares",
        "cpu",
        f"{'cpu.weight' if cpu.v2 else 'cpu.shares'}={cpu.shares} vs {reference.default_shares}",
        cpu.shares / reference.default_shares,
        ratio,
        "two busy loops on one CPU, CPU time from /proc",
    )


def _domain_disk(
    hypervisor: Hypervisor,
    name: str,
    target: str,
    tune: tuple[str, int, int],
    seconds: int,
    guest: tuple[GuestEndpoint, str] | None = None,
) -> Verdict:
    """One iotune value (`tune`: read_bytes_sec, total_iops_sec...; its value; its
    `*_max`, 0 for none) measured on the running domain's disk: from inside a real guest
    (`guest`: where, and the disk's serial), else through its device from the monitor."""
    key, value, peak = tune
    direction, unit = key.split("_", 1)
    iops = unit == "iops_sec"
    size = 4096 if iops else 65536
    per_request = 1 if iops else size
    count = max(20, int(value * seconds / per_request))
    warmup = math.ceil(iotune_burst(value, peak) / per_request) + 1
    op = "write" if direction == "write" else "read"
    if guest is not None:
        rate = measure.guest_disk_rate(guest[0], guest[1], op, size, count, warmup)
        how = f"dd {count} x {op} {size} B with O_DIRECT inside the guest"
    else:
        rate = hypervisor.disk_rate(name, target, op, size, count, warmup)
        how = f"HMP qemu-io {count} x {op} {size} B on the domain's disk device"
    return judge_disk(
        "disk_iops" if iops else "disk_bytes",
        target,
        direction,
        value,
        rate.ops_per_s if iops else rate.bytes_per_s,
        "IOPS" if iops else "bytes/s",
        f"{how} after {warmup} (QEMU's bucket), {rate.seconds:.1f} s",
    )


def iotune_burst(value: int, peak: int, burst_length_s: int = 1) -> float:
    """What QEMU lets through at once (bytes or requests) before it holds a disk to
    `value` per second: its bucket, a tenth of a second of `value`, or with a `*_max` of
    `peak` the `peak` x `burst_length_s` that bucket then holds (throttle_compute_wait in
    QEMU's util/throttle.c; with the burst length of 1 s Nova leaves, no burst rate
    applies). A measurement's clock starts after it."""
    return peak * burst_length_s if peak else value / 10


def verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, object]]:
    return [v.to_json() for v in verdicts]
