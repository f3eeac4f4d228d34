"""The reconcile pass, backend by backend: each one observes what its host driver holds for
the targets, names the drift from their desired state (the pure comparisons of
verify/drift.py), and applies the changes through its driver.

They mirror the compiler's enforcement backends (compiler/enforcement/registry.py), grouped
by the host driver that applies them: tc and nftables act on the same Linux devices, the
switch on OVS ports (or OVN's Northbound rows), the hypervisor on libvirt domains, the volume driver on exports, the
cgroup driver on instance groups. A failure is charged to the server it belongs to through
`charge`, the reconciler's one retry decision; nothing here retries.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from qosplane.compiler.enforcement.program import Wanted, admit, device_commands
from qosplane.host.cgroups import Cgroups
from qosplane.host.errors import HostError
from qosplane.host.hypervisor import Hypervisor
from qosplane.host.instances import Instances
from qosplane.host.nft import DscpMarking
from qosplane.host.ovn import OvnSwitch
from qosplane.host.ovs import Switch, SwitchResult
from qosplane.host.tc import DeviceTc, TrafficControl
from qosplane.host.volumes import Volumes
from qosplane.model.host_state import (
    DeviceQos,
    ObservedDevice,
    ObservedOvnPort,
    ObservedPort,
    Outcome,
    OvnPortQos,
    PacketLimit,
    PortQos,
    UplinkQos,
)
from qosplane.model.report import Drift
from qosplane.model.units import BitsPerSecond
from qosplane.verify.drift import (
    cpu_drift,
    device_drift,
    domain_drift,
    ovn_port_drift,
    ovn_read_back,
    packet_limit_aspect,
    packet_limit_text,
    port_drift,
    uplink_drift,
    volume_drift,
)

if TYPE_CHECKING:
    from qosplane.agent.reconcile import PassResult, Target


class Charge(Protocol):
    def __call__(
        self, result: PassResult, name: str, exc: HostError, first: bool = False
    ) -> None: ...


class HostBackend(Protocol):
    name: str

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        """What differs on the host from the targets' desired state. A target whose state
        cannot be read is named in `unreadable`, with why."""

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        """Bring the `ready` targets to their desired state (`targets`: every wanted one)."""


@dataclass
class LinuxDevices:
    """tc (htb to the instance, an ifb from it) and nftables DSCP marks on the instances'
    host-side devices; one look at all devices costs a few processes, not a few each."""

    tc: TrafficControl
    dscp: DscpMarking
    instances: Instances
    name: str = "linux-devices"
    marks: dict[str, int] = field(default_factory=dict)
    packet_limits: dict[tuple[str, bool], PacketLimit] = field(default_factory=dict)
    # Devices of the servers this pass leaves as they are (failed or held back): their
    # marks and packet limits are neither stale nor rewritten.
    untouched: set[str] = field(default_factory=set)
    _seen: dict[str, DeviceTc] = field(default_factory=dict)

    def _observe_all(self, targets: Sequence[Target]) -> None:
        names = [
            name
            for t in targets
            for d in t.qos.devices
            for name in ((d.device, d.ifb) if d.from_instance is not None else (d.device,))
        ]
        self._seen = self.tc.observe_many(names)

    def observe_device(self, desired: DeviceQos) -> ObservedDevice:
        tap = self._seen.get(desired.device) or self.tc.observe(desired.device)
        ifb = None
        if desired.from_instance is not None:
            ifb = self._seen.get(desired.ifb) or self.tc.observe(desired.ifb)
        return ObservedDevice(
            qos=DeviceQos(
                desired.device,
                tap.root,
                ifb.root if ifb is not None and ifb.exists else None,
                self.marks.get(desired.device),
                self.packet_limits.get((desired.device, True)),
                self.packet_limits.get((desired.device, False)),
            ),
            exists=tap.exists,
            redirect_to=tap.redirect_to,
            root_htb=tap.root_htb,
            ingress=tap.ingress,
            ifb_root_htb=ifb is not None and ifb.root_htb,
            other_qdiscs=tap.foreign,
        )

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        self.marks, self.packet_limits = self.dscp.observe_all()
        self._observe_all(targets)
        shaped = [d for t in targets for d in t.qos.devices if d.from_instance is not None]
        present, up = (self.instances.ifbs(), self.instances.ifbs_up()) if shaped else ((), ())
        out: list[Drift] = []
        for t in targets:
            for device in t.qos.devices:
                out += device_drift(t.qos.name, device, self.observe_device(device))
                if device.ifb in present and device.ifb not in up:
                    out.append(Drift(t.qos.name, device.ifb, "ifb device state", "up", "down"))
        # One look at every tap: "device" drift makes the reconciler plug the instance in
        # again at once.
        unplugged = self.instances.miswired([p for t in targets for p in t.ports])
        for t in targets:
            for port in t.ports:
                if port.tap in unplugged:
                    out.append(
                        Drift(t.qos.name, port.tap, "device", "up in its bridge", "unplugged")
                    )
        # A chain whose device no server has any more (its server was deleted): removed on
        # this pass, not when the next server comes.
        wanted = {d.device for t in targets for d in t.qos.devices} | self.untouched
        for name, mark in sorted(self.marks.items()):
            if name not in wanted:
                out.append(Drift("", name, "dscp mark", "none", str(mark)))
        for (name, to_instance), limit in sorted(self.packet_limits.items()):
            if name not in wanted:
                aspect = packet_limit_aspect(to_instance)
                out.append(Drift("", name, aspect, "none", packet_limit_text(limit)))
        return out

    def _device_lines(
        self, targets: Sequence[Target], result: PassResult
    ) -> list[tuple[str, list[str]]]:
        up = self.instances.ifbs_up()
        for t in targets:
            for device in t.qos.devices:
                if device.from_instance is not None and device.ifb not in up:
                    self.instances.ensure_ifb(device.ifb)  # creates it, or sets it up
        self._observe_all(targets)
        per_device: list[tuple[str, list[str]]] = []
        for t in targets:
            for device in t.qos.devices:
                observed = self.observe_device(device)
                if not observed.exists:
                    result.errors[t.qos.name] = f"device {device.device} is missing"
                    continue
                lines = device_commands(device, observed)
                if lines:
                    per_device.append((t.qos.name, lines))
        return per_device

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        per_device = self._device_lines(ready, result)
        batch = [line for _, lines in per_device for line in lines]
        result.commands += len(batch)
        try:
            self.tc.apply(batch)
        except HostError:
            # tc applied the batch up to its failing line. Isolate the failing device:
            # observe again and apply each device's remaining lines on their own, so the
            # others still converge in this pass.
            for t in ready:
                for name, lines in self._device_lines([t], result):
                    try:
                        self.tc.apply(lines)
                    except HostError as exc:
                        charge(result, name, exc)
        devices = [d for t in ready for d in t.qos.devices]
        marks = {d.device: d.dscp for d in devices if d.dscp is not None}
        marks |= {d: m for d, m in self.marks.items() if d in self.untouched and d not in marks}
        limits = {key: limit for d in devices for key, limit in d.packet_limits().items()}
        limits |= {
            key: limit
            for key, limit in self.packet_limits.items()
            if key[0] in self.untouched and key not in limits
        }
        if marks != self.marks or limits != self.packet_limits:
            try:
                self.dscp.apply(marks, limits)
            except HostError as exc:
                for t in ready:  # charged to the servers that have a rule in the table
                    if any(_in_nft_table(d) for d in t.qos.devices):
                        charge(result, t.qos.name, exc, first=True)


def _in_nft_table(device: DeviceQos) -> bool:
    return device.dscp is not None or bool(device.packet_limits())


@dataclass
class OvsPorts:
    """Open vSwitch: each port's QoS row and queue, its meter and its flows."""

    switch: Switch
    name: str = "ovs"

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        if not any(t.qos.ports for t in targets):
            return []
        try:
            seen = self.switch.observe()
        except HostError as exc:  # ovs-vswitchd gone, say: charged to its servers
            for t in targets:
                if t.qos.ports:
                    unreadable.setdefault(t.qos.name, str(exc))
            return []
        out: list[Drift] = []
        for t in targets:
            for port in t.qos.ports:
                observed = seen.get(port.port) or ObservedPort(PortQos(port.port), exists=False)
                out += port_drift(t.qos.name, port, observed)
        return out

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        """The ready servers' ports to their QoS; the ports of servers that failed this pass
        are left as they are (not stripped), and a port that fails is charged to its
        server alone."""
        _apply_ports(self.switch.apply, lambda t: t.qos.ports, targets, ready, result, charge)


_P = TypeVar("_P", PortQos, OvnPortQos)


def _apply_ports(
    apply: Callable[[Sequence[_P], Collection[str]], SwitchResult],
    ports_of: Callable[[Target], Sequence[_P]],
    targets: Sequence[Target],
    ready: Sequence[Target],
    result: PassResult,
    charge: Charge,
) -> None:
    """A switch's ports of the ready servers to their QoS: the ports of servers that
    failed this pass are left as they are, the switch failing as a whole is charged to
    its servers, and a port that fails to its server alone."""
    names = {t.qos.name for t in ready}
    leave = {p.port for t in targets if t.qos.name not in names for p in ports_of(t)}
    try:
        applied = apply([p for t in ready for p in ports_of(t)], leave)
    except HostError as exc:
        for t in ready:
            if ports_of(t):
                charge(result, t.qos.name, exc, first=True)
        return
    result.commands += applied.changes
    for t in ready:
        for port in ports_of(t):
            if port.port in applied.failed and t.qos.name not in result.errors:
                result.errors[t.qos.name] = f"{port.port}: {applied.failed[port.port]}"


NO_SERVER = "(no server)"  # the instance of drift that belongs to none


@dataclass
class OvnPorts:
    """OVN: each port's Northbound QoS rows (ovn-controller makes the meters)."""

    switch: OvnSwitch
    name: str = "ovn"
    seen: dict[str, ObservedOvnPort] = field(default_factory=dict)  # the last observe()

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        # Looked at with no server too: what the last one left (rows, logical ports) goes.
        try:
            self.seen = seen = self.switch.observe()
        except HostError as exc:  # a daemon gone, say: charged to its servers
            for t in targets:
                if t.qos.ovn_ports:
                    unreadable.setdefault(t.qos.name, str(exc))
            return []
        out: list[Drift] = []
        for t in targets:
            for port in t.qos.ovn_ports:
                observed = seen.get(port.port) or ObservedOvnPort(OvnPortQos(port.port), False)
                out += ovn_port_drift(t.qos.name, port, observed)
        # A row of no port polices whatever it matches, on the agent's own switches.
        out += [
            Drift(NO_SERVER, self.switch.bridge, "OVN rows of no port", "none", stray)
            for stray in self.switch.strays()
        ]
        return out

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        """As OvsPorts.act: the ports of servers that failed this pass keep their rows."""
        _apply_ports(self.switch.apply, lambda t: t.qos.ovn_ports, targets, ready, result, charge)

    def held_as(self, target: Target) -> dict[tuple[str, str, str], str]:
        """(kind, device, direction) -> the row and meter last seen holding it."""
        out = {}
        for port in target.qos.ovn_ports:
            observed = self.seen.get(port.port)
            if observed is not None:
                for (kind, direction), text in ovn_read_back(observed).items():
                    out[(kind, port.port, direction)] = text
        return out


@dataclass
class Uplinks:
    """Minimum bandwidth: each network's uplink (the host end of its probe, where every
    instance of the network sends out) with an htb class per guaranteed port, admitted
    against the uplink's capacity (compiler/enforcement/backends/uplink.py)."""

    tc: TrafficControl
    capacity_bits_per_s: BitsPerSecond
    refuse: bool
    name: str = "uplinks"
    # Per instance, (kind, device, direction) -> the outcome and why, for refused or
    # over-committed guarantees: the reports say so.
    said: dict[str, dict[tuple[str, str, str], tuple[Outcome, str]]] = field(default_factory=dict)
    _desired: dict[str, tuple[UplinkQos | None, list[str]]] = field(default_factory=dict)
    # Every wanted server of the pass, the failed and held back too: their guarantees
    # keep their classes and their share of the link (the reconciler sets it).
    everyone: Sequence[Target] = ()

    def _plan(self, targets: Sequence[Target]) -> None:
        wanted: dict[str, list[Wanted]] = {}
        for t in self.everyone or targets:
            wires = {w.tap: w for w in t.ports}
            for w in t.ports:
                if w.gateway is not None:  # a network with a probe has an uplink
                    wanted.setdefault(w.probe_port, [])
            for g in t.qos.guarantees:
                wire = wires.get(g.device)
                if wire is not None and wire.gateway is not None:
                    wanted[wire.probe_port].append(
                        Wanted(t.qos.name, g.device, wire.mac, g.rate_bits_per_s)
                    )
        self._desired, self.said = {}, {}
        for uplink, want in sorted(wanted.items()):
            qos, said = admit(uplink, self.capacity_bits_per_s, want, self.refuse)
            members = sorted({one.instance for one in want})
            self._desired[uplink] = (qos if qos.classes else None, members)
            for one in want:
                if one.device in said:
                    outcome = Outcome.NOT_ENFORCEABLE if self.refuse else Outcome.APPLIED
                    key = ("min_bandwidth", one.device, "egress")
                    self.said.setdefault(one.instance, {})[key] = (outcome, said[one.device])

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        self._plan(targets)
        out: list[Drift] = []
        for uplink, (qos, members) in self._desired.items():
            try:
                seen = self.tc.uplink(uplink)
            except HostError as exc:
                for name in members:
                    unreadable.setdefault(name, str(exc))
                continue
            out += uplink_drift(members or [f"uplink {uplink}"], qos, seen)
        return out

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        for uplink, (qos, members) in self._desired.items():
            try:
                seen = self.tc.uplink(uplink)
                if uplink_drift(members or ["-"], qos, seen):
                    self.tc.set_uplink(uplink, qos)
                    result.commands += 1
            except HostError as exc:
                for name in members:
                    charge(result, name, exc, first=True)


@dataclass
class LibvirtDomains:
    """libvirt: each server's domain, defined and started, its cputune and iotune re-tuned
    live. `ensure` (define, start) runs before the pass observes; `act` restarts a domain
    that stopped and re-tunes a running one."""

    hypervisor: Hypervisor
    name: str = "libvirt"
    ensured: set[str] = field(default_factory=set)  # domains ensured by this process

    def ensure(
        self, targets: Sequence[Target], result: PassResult, charge: Charge, restart_only: bool
    ) -> None:
        """Define and start each target's domain; on a quiet pass only the domains that
        are not running (`restart_only`), since a running one is checked by observation."""
        try:
            running = None if restart_only else self.hypervisor.names()
        except HostError as exc:
            for t in targets:
                if t.qos.domain is not None:
                    charge(result, t.qos.name, exc, first=True)
            return
        for t in targets:
            domain = t.qos.domain
            if domain is None or t.qos.name in result.errors:
                continue
            if running is not None and domain.name in running and domain.name in self.ensured:
                continue
            try:
                self.hypervisor.ensure(domain, t.ports)
                self.ensured.add(domain.name)
            except HostError as exc:
                charge(result, t.qos.name, exc)

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        out: list[Drift] = []
        for t in targets:
            if t.qos.domain is None:
                continue
            try:
                live = self.hypervisor.observe(t.qos.domain.name)
            except HostError as exc:  # libvirtd gone, say: charged to this server
                unreadable.setdefault(t.qos.name, str(exc))
            else:
                out += domain_drift(t.qos.name, t.qos.domain, live)
        return out

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        for t in ready:
            domain = t.qos.domain
            if domain is None:
                continue
            try:
                live = self.hypervisor.observe(domain.name)
                if domain_drift(t.qos.name, domain, live):
                    self.hypervisor.apply(domain)
            except HostError as exc:
                charge(result, t.qos.name, exc)


@dataclass
class VolumeExports:
    """qemu-storage-daemon: one throttled export per attached volume."""

    volumes: Volumes
    name: str = "qemu-storage-daemon"

    def start_missing(self, targets: Sequence[Target], result: PassResult, charge: Charge) -> None:
        """Export each wanted volume no export serves yet (one whose limits differ is left
        to `act`, after the pass has observed it)."""
        for t in targets:
            if t.qos.name in result.errors:
                continue
            for volume in t.qos.volumes:
                try:
                    if self.volumes.observe(volume.volume_id) is None:
                        self.volumes.ensure(volume.volume_id, volume.size_gb, volume.limits_map())
                except HostError as exc:
                    charge(result, t.qos.name, exc)
                    break

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        return [
            d
            for t in targets
            for v in t.qos.volumes
            for d in volume_drift(t.qos.name, v, self.volumes.observe(v.volume_id))
        ]

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        for t in ready:
            for volume in t.qos.volumes:
                if volume_drift(t.qos.name, volume, self.volumes.observe(volume.volume_id)):
                    try:
                        self.volumes.ensure(volume.volume_id, volume.size_gb, volume.limits_map())
                    except HostError as exc:
                        charge(result, t.qos.name, exc)


@dataclass
class CgroupGroups:
    """The cgroup driver: each instance's cpu shares and CFS quota."""

    cgroups: Cgroups
    name: str = "cgroup"

    def drift(self, targets: Sequence[Target], unreadable: dict[str, str]) -> list[Drift]:
        return [
            d
            for t in targets
            if t.qos.cpu is not None
            for d in cpu_drift(t.qos.name, t.qos.cpu, self.cgroups.observe(t.qos.cpu.group))
        ]

    def act(
        self,
        targets: Sequence[Target],
        ready: Sequence[Target],
        result: PassResult,
        charge: Charge,
    ) -> None:
        for t in ready:
            cpu = t.qos.cpu
            if cpu is not None and cpu_drift(t.qos.name, cpu, self.cgroups.observe(cpu.group)):
                try:
                    self.cgroups.apply(cpu)
                except HostError as exc:
                    charge(result, t.qos.name, exc)
