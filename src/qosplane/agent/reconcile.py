"""One reconcile pass on one host: desired -> observe -> compare -> act -> observe again.

The pass is idempotent: on a converged host it observes, finds no drift and changes
nothing. Everything it writes is derived from desired state and observation only, so an
agent killed mid-pass and restarted simply converges on its next pass. A failure is
retried here and nowhere else: a failing tc batch is re-run device by device so one bad
device cannot block the others, and what still fails is reported, not swallowed. A failure
the host calls permanent (PermanentHostError) holds its server back: it is reported failed
and left as it is until its plan changes, instead of being tried again every pass. A
temporary failure is tried again on the next pass, then with a doubling pause while it
keeps failing: a server whose plan the host cannot apply costs the pass a bounded share of
its work, and the others are not slowed by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qosplane.agent.backends import (
    CgroupGroups,
    HostBackend,
    LibvirtDomains,
    LinuxDevices,
    OvnPorts,
    OvsPorts,
    Uplinks,
    VolumeExports,
)
from qosplane.compiler.enforcement.program import host_program
from qosplane.host.cgroups import Cgroups
from qosplane.host.errors import HostError
from qosplane.host.hypervisor import Hypervisor
from qosplane.host.instances import PROBE_OWNER, SCRATCH_OWNER, Instances, PortWire
from qosplane.host.nft import DscpMarking
from qosplane.host.ovn import OvnSwitch
from qosplane.host.ovs import PortPlugs, Switch
from qosplane.host.tc import TrafficControl
from qosplane.host.volumes import Volumes
from qosplane.model.host_state import (
    Capabilities,
    InstanceQos,
    Outcome,
    OvnPortQos,
    PortQos,
    RuleOutcome,
)
from qosplane.model.plan import DesiredServer
from qosplane.model.report import Drift, ReportStatus, ServerReport

INSTANCE_PREFIX = "instance-"  # Nova's instance_name_template, instance-%08x
# A server that failed permanently is left alone until its plan changes, and tried again
# after this long in case the host changed under it (a tool installed, a name freed).
PERMANENT_RETRY_AFTER_S = 300.0
# A temporary failure is retried on the next pass; from its second in a row the server waits
# RETRY_PAUSE_S, doubled for each further failure up to RETRY_PAUSE_MAX_S, before it is
# tried again (sooner if its plan changes).
RETRY_PAUSE_S = 1.0
RETRY_PAUSE_MAX_S = 60.0


def retry_pause_s(failures_in_a_row: int) -> float:
    """How long a server that failed temporarily this many passes in a row waits."""
    if failures_in_a_row < 2:
        return 0.0
    return min(RETRY_PAUSE_S * 2.0 ** (failures_in_a_row - 2), RETRY_PAUSE_MAX_S)


@dataclass(frozen=True, slots=True)
class Held:
    """A server not acted on until `until_s` (time.monotonic()) or until its plan changes:
    its last pass failed, permanently or for the `failures`-th time in a row."""

    plan_revision: int
    error: str
    until_s: float
    failures: int


@dataclass(frozen=True, slots=True)
class HostDrivers:
    instances: Instances
    tc: TrafficControl
    dscp: DscpMarking
    cgroups: Cgroups
    volumes: Volumes
    switch: Switch | None = None  # ports wired into OVS (Capabilities.ovs_switch)
    hypervisor: Hypervisor | None = None  # libvirt domains (Capabilities.libvirt)
    ovn: OvnSwitch | None = None  # ports wired into OVN (Capabilities.ovn_switch)

    def plugs(self) -> PortPlugs | None:
        """Whichever switch the instances' ports are plugged into, if any."""
        return self.switch if self.switch is not None else self.ovn


@dataclass(frozen=True, slots=True)
class Target:
    """One server as this host must run it."""

    server_id: str
    plan_revision: int
    qos: InstanceQos
    outcomes: tuple[RuleOutcome, ...]
    ports: tuple[PortWire, ...]


@dataclass
class PassResult:
    drift_before: list[Drift] = field(default_factory=list)
    drift_after: list[Drift] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # instance -> what failed
    host_errors: list[str] = field(default_factory=list)  # cleanup failures, retried
    removed: list[str] = field(default_factory=list)
    commands: int = 0
    # Instances whose failure the host says no retry can fix (PermanentHostError).
    permanent: set[str] = field(default_factory=set)
    # Instances held back this pass (not acted on): their error is an earlier pass's.
    waiting: set[str] = field(default_factory=set)
    # Instance -> (kind, device, direction) -> what the host was seen holding for it.
    held_as: dict[str, dict[tuple[str, str, str], str]] = field(default_factory=dict)
    # Instance -> (kind, device, direction) -> an outcome the host decided, not the
    # compiler (a guarantee refused or over-committed on its uplink), and why.
    decided: dict[str, dict[tuple[str, str, str], tuple[Outcome, str]]] = field(
        default_factory=dict
    )

    @property
    def changed(self) -> bool:
        return bool(self.drift_before or self.removed or self.errors)


def ports_of(server: DesiredServer) -> tuple[PortWire, ...]:
    """The server's ports as a host plugs them in."""
    ports = server.ports
    out = []
    for port in ports:
        gateways = [a.gateway for a in port.addresses if a.gateway]
        out.append(
            PortWire(
                tap=port.tap,
                mac=port.mac,
                network_id=port.network_id,
                addresses=tuple(a.address for a in port.addresses),
                gateway=gateways[0] if gateways else None,
                mtu_bytes=port.mtu_bytes,
                port_id=port.id,
            )
        )
    return tuple(out)


def targets_of(servers: Sequence[DesiredServer], caps: Capabilities) -> list[Target]:
    targets = []
    for desired in servers:
        qos, outcomes = host_program(desired.plan, caps, desired.volumes)
        wires = ports_of(desired)
        if caps.ovs_switch:
            # Every tap is a port of the switch, limited or not: one deleted from the
            # bridge is then missed and plugged again, and one whose limits went is cleared.
            limited = {p.port for p in qos.ports}
            bare = tuple(PortQos(w.tap) for w in wires if w.tap not in limited)
            qos = replace(qos, ports=tuple(sorted((*qos.ports, *bare), key=lambda p: p.port)))
        if caps.ovn_switch:  # likewise: a logical port deleted behind the agent's back
            limited = {p.port for p in qos.ovn_ports}
            bare_ovn = tuple(OvnPortQos(w.tap) for w in wires if w.tap not in limited)
            ovn_ports = tuple(sorted((*qos.ovn_ports, *bare_ovn), key=lambda p: p.port))
            qos = replace(qos, ovn_ports=ovn_ports)
        targets.append(Target(desired.id, desired.plan_revision, qos, outcomes, wires))
    return targets


class Reconciler:
    def __init__(self, drivers: HostDrivers, caps: Capabilities) -> None:
        self.d = drivers
        self.caps = caps
        self._ensured: dict[str, tuple[PortWire, ...]] = {}
        self._all: Sequence[Target] = ()
        self.domains = LibvirtDomains(drivers.hypervisor) if drivers.hypervisor else None
        self.linux = LinuxDevices(drivers.tc, drivers.dscp, drivers.instances)
        self.exports = VolumeExports(drivers.volumes)
        self.ovn = OvnPorts(drivers.ovn) if drivers.ovn is not None else None
        self.uplinks = (
            Uplinks(drivers.tc, caps.uplink_bits_per_s, caps.refuse_overcommit)
            if caps.uplink_bits_per_s and not caps.switched
            else None
        )
        # The pass goes backend by backend (agent/backends.py), in this order: a volume is
        # exported before a guest's domain attaches it.
        self.backends: list[HostBackend] = [
            self.linux,
            *([OvsPorts(drivers.switch)] if drivers.switch is not None else []),
            *([self.ovn] if self.ovn is not None else []),
            *([self.uplinks] if self.uplinks is not None else []),
            self.exports,
            *([self.domains] if self.domains is not None else []),
            CgroupGroups(drivers.cgroups),
        ]
        # Servers whose state could not be read in the last drift(): charged to them.
        self.observe_errors: dict[str, str] = {}
        self.held: dict[str, Held] = {}  # instance name -> why it is not acted on now
        # Instance name -> temporary failures in a row, kept across a hold's release.
        self.failures: dict[str, int] = {}
        self.clock: Callable[[], float] = time.monotonic

    # -- retry: the one place that decides it ----------------------------------------
    @staticmethod
    def _charge(result: PassResult, name: str, exc: HostError, first: bool = False) -> None:
        """`name` failed this pass with `exc`; `first` keeps an earlier error of the pass."""
        if first and name in result.errors:
            return
        result.errors[name] = str(exc)
        if exc.retryable:
            result.permanent.discard(name)
        else:
            result.permanent.add(name)

    def _hold_back(self, targets: Sequence[Target], result: PassResult) -> None:
        """Charge the held servers their error again instead of acting on them; release the
        ones whose plan changed or whose hold expired."""
        now = self.clock()
        revisions = {t.qos.name: t.plan_revision for t in targets}
        for name, held in list(self.held.items()):
            if revisions.get(name) != held.plan_revision:
                del self.held[name]
                self.failures.pop(name, None)  # a new plan starts with a clean slate
            elif now >= held.until_s:
                del self.held[name]
            else:
                result.errors[name] = held.error
                result.waiting.add(name)

    def _remember_failures(self, targets: Sequence[Target], result: PassResult) -> None:
        """Hold back what failed this pass: a permanent failure for PERMANENT_RETRY_AFTER_S,
        a temporary one for retry_pause_s() of its failures in a row."""
        now = self.clock()
        for t in targets:
            name = t.qos.name
            if name in result.waiting:
                continue
            if name not in result.errors:
                self.failures.pop(name, None)
                continue
            if name in result.permanent:
                pause_s, failures = PERMANENT_RETRY_AFTER_S, self.failures.get(name, 0)
            else:
                failures = self.failures.get(name, 0) + 1
                self.failures[name] = failures
                pause_s = retry_pause_s(failures)
            if pause_s > 0:
                self.held[name] = Held(
                    t.plan_revision, result.errors[name], now + pause_s, failures
                )
        for name in set(self.failures) - {t.qos.name for t in targets}:
            del self.failures[name]  # a deleted server

    # -- observe ---------------------------------------------------------------------
    def drift(self, targets: Sequence[Target]) -> list[Drift]:
        """Every backend's drift for `targets`; servers whose state could not be read are
        left in `observe_errors`, charged to them."""
        self.observe_errors = {}
        return [d for backend in self.backends for d in backend.drift(targets, self.observe_errors)]

    # -- act -------------------------------------------------------------------------
    def _remove_stale(self, targets: Sequence[Target], result: PassResult) -> None:
        wanted = {t.qos.name for t in targets}
        if self.d.hypervisor is not None:
            # Domains first: a guest's disks and taps go with it, before their exports.
            for name in sorted(self.d.hypervisor.names() - wanted):
                self.d.hypervisor.remove(name)
                result.removed.append(name)
        for name in sorted(self.d.instances.names() - wanted):
            self.d.instances.remove(name)
            self._ensured.pop(name, None)
            self.d.cgroups.remove(name)
            if name not in result.removed:
                result.removed.append(name)
        wanted_ifbs = {d.ifb for t in targets for d in t.qos.devices if d.from_instance}
        for ifb in sorted(self.d.instances.ifbs() - wanted_ifbs):
            self.d.instances.remove_ifb(ifb)
        wanted_networks = {p.network_id[:8] for t in targets for p in t.ports}
        for network in sorted(self.d.instances.networks() - wanted_networks):
            self.d.instances.cleanup_network(network)
        wanted_volumes = {v.volume_id for t in targets for v in t.qos.volumes}
        stale = sorted(self.d.volumes.volume_ids() - wanted_volumes)
        # A volume detached from a running guest keeps its export until the guest has let
        # the disk go (the unplug is the guest's, and may take passes).
        in_use = self.d.hypervisor.sockets_in_use() if stale and self.d.hypervisor else set()
        for volume_id in stale:
            if self.d.volumes.socket(volume_id) not in in_use:
                self.d.volumes.remove(volume_id)
        for group in sorted(self.d.cgroups.groups() - wanted):
            if group.startswith(INSTANCE_PREFIX):  # verify's reference group is not ours
                self.d.cgroups.remove(group)
        plugs = self.d.plugs()
        if plugs is not None:
            # A port whose instance or network went while the agent was down.
            owners = wanted | {PROBE_OWNER + n for n in wanted_networks}
            for port, owner in sorted(plugs.owners().items()):
                if owner not in owners and not owner.startswith(SCRATCH_OWNER):
                    plugs.unplug(port)

    def converge(self, servers: Sequence[DesiredServer]) -> tuple[list[Target], PassResult]:
        targets = targets_of(servers, self.caps)
        return targets, self.converge_targets(targets)

    def converge_targets(self, targets: Sequence[Target]) -> PassResult:
        result = PassResult()
        self._converge(targets, result)
        self._remember_failures(targets, result)
        return result

    def _converge(self, targets: Sequence[Target], result: PassResult) -> None:
        self._all = targets
        if self.uplinks is not None:
            self.uplinks.everyone = targets
        self._hold_back(targets, result)
        try:
            self._remove_stale(targets, result)
        except HostError as exc:
            # Cleanup of what is no longer wanted failed: the wanted servers are unaffected
            # and it is retried next pass, so it is logged, not charged to them.
            result.host_errors.append(str(exc))
        self._wire(targets, result)
        if self.domains is not None:
            # A guest's volumes are disks on their exports: exported before it is defined.
            self.exports.start_missing(targets, result, self._charge)
            self.domains.ensure(targets, result, self._charge, restart_only=False)
        ready = [t for t in targets if t.qos.name not in result.errors]
        result.drift_before = self._drift_charged(ready, result)
        ready = [t for t in ready if t.qos.name not in result.errors]
        if self.domains is not None:
            stopped = {d.instance for d in result.drift_before if d.aspect == "libvirt domain"}
            self.domains.ensure(
                [t for t in ready if t.qos.name in stopped], result, self._charge, restart_only=True
            )
        missing = {d.instance for d in result.drift_before if d.aspect == "device"}
        self._wire([t for t in ready if t.qos.name in missing], result, again=True)
        if result.drift_before:
            for backend in self.backends:
                backend.act(targets, ready, result, self._charge)
            result.drift_after = self._drift_charged(ready, result)
        if self.ovn is not None:  # as last observed: after the repair, when there was one
            result.held_as = {t.qos.name: self.ovn.held_as(t) for t in ready}
        if self.uplinks is not None:
            result.decided = dict(self.uplinks.said)

    def _drift_charged(self, targets: Sequence[Target], result: PassResult) -> list[Drift]:
        # What the pass does not act on keeps its state: its marks are not stale.
        self.linux.untouched = {
            d.device for t in self._all if t.qos.name in result.errors for d in t.qos.devices
        }
        found = self.drift(targets)
        for name, error in self.observe_errors.items():
            result.errors.setdefault(name, error)
        return found

    def _wire(self, targets: Sequence[Target], result: PassResult, again: bool = False) -> None:
        """Each instance with its ports plugged in. Checked in full when new or changed, or
        (`again`) when a device went missing; a quiet pass costs a few processes, not a few
        per instance."""
        present = self.d.instances.names()
        for t in targets:
            if t.qos.name in result.errors:  # held back: a retry cannot help
                continue
            if not again and t.qos.name in present and self._ensured.get(t.qos.name) == t.ports:
                continue
            try:
                self.d.instances.ensure(t.qos.name, t.ports)
                self._ensured[t.qos.name] = t.ports
            except HostError as exc:
                self._ensured.pop(t.qos.name, None)
                self._charge(result, t.qos.name, exc)


def _decided(decision: tuple[Outcome, str] | None) -> dict[str, Any]:
    """A rule's fields as the host decided them; one refused names no mechanism."""
    if decision is None:
        return {}
    outcome, reason = decision
    mechanism = {} if outcome is Outcome.APPLIED else {"mechanism": ""}
    return {"outcome": outcome, "reason": reason, **mechanism}


def server_reports(targets: Sequence[Target], result: PassResult) -> list[ServerReport]:
    """Per server: applied, partial (some limit cannot be enforced here) or failed, with
    one line per rule saying which mechanism enforces it or why none does."""
    reports = []
    for t in targets:
        failed = result.errors.get(t.qos.name)
        remaining = [d for d in result.drift_after if d.instance == t.qos.name]
        held = result.held_as.get(t.qos.name, {})
        decided = result.decided.get(t.qos.name, {})
        rules = tuple(
            replace(
                r,
                held_as=held.get((r.kind, r.device, r.direction), ""),
                **_decided(decided.get((r.kind, r.device, r.direction))),
            )
            for r in t.outcomes
        )
        if failed or remaining:
            status = ReportStatus.FAILED
            reason = failed or "; ".join(f"{d.device} {d.aspect}" for d in remaining)
            rules = tuple(
                replace(r, outcome=Outcome.FAILED, reason=reason)
                if r.outcome is Outcome.APPLIED
                else r
                for r in rules
            )
        elif any(o.outcome is Outcome.NOT_ENFORCEABLE for o in rules):
            status = ReportStatus.PARTIAL
        else:
            status = ReportStatus.APPLIED
        reports.append(ServerReport(t.server_id, t.plan_revision, status, rules, failed or ""))
    return reports


def repaired_drift(
    targets: Sequence[Target], result: PassResult, converged: Mapping[str, int]
) -> dict[str, tuple[Drift, ...]]:
    """Per server, what the pass repaired on it: drift only where the plan revision had
    already converged (`converged`: server id -> plan revision), so applying a new plan is
    not reported as a repair."""
    out = {}
    for t in targets:
        if converged.get(t.server_id) != t.plan_revision:
            continue
        found = tuple(d for d in result.drift_before if d.instance == t.qos.name)
        if found:
            out[t.server_id] = found
    return out
