"""Which plans a change can alter, and the one place that recompiles them.

A server's plan is compiled from its flavor, its ports' and their networks' QoS policies,
its attached volumes' types and QoS specs, and its host's registered facts. Every change to
one of these is described by a value below; `Replanner.changing(...)` finds the servers that
depend on it before and after the change and recompiles each of them once. Taking both sides
matters: a disassociated spec or a detached volume no longer points at the server it used to
shape, and that server must lose the limit.

Nothing outside this module recompiles a plan. The service modules wrap each plan-affecting
store call in `changing`, so the API never has to know what a plan depends on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from qosplane.compiler.upstream.plan import compile_plan
from qosplane.store.hosts import HostRepository
from qosplane.store.networks import NetworkRepository
from qosplane.store.servers import ServerRepository
from qosplane.store.tables import PortRow, ServerRow, VolumeRow
from qosplane.store.volumes import VolumeRepository


@dataclass(frozen=True, slots=True)
class FlavorChanged:
    """Its extra specs (quota:*) changed."""

    flavor_id: str


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """A Neutron QoS policy or one of its rules changed."""

    policy_id: str


@dataclass(frozen=True, slots=True)
class PortChanged:
    """A port's own policy binding changed."""

    port_id: str


@dataclass(frozen=True, slots=True)
class NetworkChanged:
    """A network's policy binding changed: every port on it inherits the network policy."""

    network_id: str


@dataclass(frozen=True, slots=True)
class QosSpecChanged:
    """A Cinder QoS spec's keys or associations changed."""

    spec_id: str


@dataclass(frozen=True, slots=True)
class VolumeChanged:
    """A volume was attached, detached or resized."""

    volume_id: str


@dataclass(frozen=True, slots=True)
class ServerChanged:
    """The server itself: created, or its NICs or disks changed."""

    server_id: str


@dataclass(frozen=True, slots=True)
class HostFactsChanged:
    """The host's agent registered different facts (wiring, cgroup version, switch)."""

    host: str


PlanInput = (
    FlavorChanged
    | PolicyChanged
    | PortChanged
    | NetworkChanged
    | QosSpecChanged
    | VolumeChanged
    | ServerChanged
    | HostFactsChanged
)


class Replanner:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.servers = ServerRepository(session)

    def affected(self, change: PlanInput) -> set[str]:
        """The ids of the servers whose plan depends on what `change` names, now. The one
        table of what a plan is compiled from."""
        s = self.session
        match change:
            case FlavorChanged(flavor_id):
                query = select(ServerRow.id).where(ServerRow.flavor_id == flavor_id)
                return set(s.scalars(query))
            case PolicyChanged(policy_id):
                return self._servers_among(NetworkRepository(s).device_ids_using_policy(policy_id))
            case PortChanged(port_id):
                port = s.get(PortRow, port_id)
                return self._servers_among({port.device_id} if port is not None else set())
            case NetworkChanged(network_id):
                query = select(PortRow.device_id).where(PortRow.network_id == network_id)
                return self._servers_among(set(s.scalars(query)))
            case QosSpecChanged(spec_id):
                return VolumeRepository(s).server_ids_for_spec(spec_id)
            case VolumeChanged(volume_id):
                volume = s.get(VolumeRow, volume_id)
                return {volume.server_id} if volume is not None and volume.server_id else set()
            case ServerChanged(server_id):
                return self._servers_among({server_id})
            case HostFactsChanged(host):
                query = select(ServerRow.id).where(ServerRow.host == host)
                return set(s.scalars(query))

    def _servers_among(self, device_ids: set[str]) -> set[str]:
        """Ports' device ids name servers, but also nothing (unbound) or other owners."""
        if not device_ids:
            return set()
        query = select(ServerRow.id).where(ServerRow.id.in_(sorted(device_ids)))
        return set(self.session.scalars(query))

    @contextmanager
    def changing(self, *changes: PlanInput) -> Iterator[None]:
        """Run the change in the block, then recompile every server that depended on what
        it names before the change or depends on it after, each once."""
        before = set().union(*(self.affected(c) for c in changes))
        yield
        self.session.flush()
        after = set().union(*(self.affected(c) for c in changes))
        self.recompile(before | after)

    def recompile(self, server_ids: set[str]) -> None:
        for server_id in sorted(server_ids):
            row = self.session.get(ServerRow, server_id)
            if row is not None:  # deleted in the same change
                self._recompile(row)

    def _recompile(self, row: ServerRow) -> None:
        """Compile with the host's registered facts, store the plan and bump both the plan's
        and the host's revision, so the host's agent wakes and applies it."""
        hosts = HostRepository(self.session)
        plan = compile_plan(self.servers.instance(row), hosts.facts(row.host))
        self.servers.store_plan(row, plan)
        hosts.bump(row.host)
        self.session.flush()
