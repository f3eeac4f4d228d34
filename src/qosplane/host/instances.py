"""The netns instance driver (design.md §4): an instance is a network namespace with one
veth pair per port. The host side is named like Nova's tap (tap + 11 characters of the
port id) and joins its network's bridge (brq + 11 characters of the network id, as
Neutron's linuxbridge names it); the guest side, eth0.., carries the port's MAC and IPs.
Each network also gets a probe namespace on its bridge holding the subnet's gateway
address, the far end `verify` measures against.

Everything is created in `host_netns` (None: the agent's own namespace), and every name
starts with `prefix`, so a host (or a test) can list and remove exactly what it owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qosplane.host.errors import HostError
from qosplane.host.process import run
from qosplane.host.tc import FakeTrafficControl

IFB_NAME_LENGTH = 14  # "ifb" + 11 characters, like the tap it serves


@dataclass(frozen=True, slots=True)
class PortWire:
    tap: str
    mac: str
    network_id: str
    addresses: tuple[str, ...]  # CIDR form, 10.0.0.3/24
    gateway: str | None = None  # CIDR form, the probe's address
    mtu_bytes: int = 1500

    @property
    def bridge(self) -> str:
        return "brq" + self.network_id[:11]


class Instances(Protocol):
    prefix: str

    def ensure(self, name: str, ports: Sequence[PortWire]) -> None:
        """Create whatever of the instance is missing; leave what exists."""

    def remove(self, name: str) -> None: ...

    def names(self) -> set[str]:
        """Instances present (their names, without the prefix)."""

    def namespace(self, name: str) -> str: ...

    def probe_namespace(self, network_id: str) -> str: ...

    def ensure_ifb(self, device: str) -> None: ...

    def remove_ifb(self, device: str) -> None: ...

    def ifbs(self) -> set[str]: ...

    def cleanup_network(self, network_id: str) -> None: ...


class RealInstances:
    def __init__(self, prefix: str = "qp-", host_netns: str | None = None) -> None:
        self.prefix = prefix
        self.host_netns = host_netns

    def _ip(self, *args: str, netns: str | None = None) -> str:
        where = netns if netns is not None else self.host_netns
        return run(["ip", *(["-n", where] if where else []), *args])

    def namespace(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def probe_namespace(self, network_id: str) -> str:
        return f"{self.prefix}probe-{network_id[:8]}"

    def _namespaces(self) -> set[str]:
        out = run(["ip", "netns", "list"])
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def _links(self, netns: str | None = None) -> set[str]:
        out = self._ip("-o", "link", "show", netns=netns)
        return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}

    def _ensure_bridge(self, port: PortWire) -> None:
        if port.bridge not in self._links():
            self._ip("link", "add", port.bridge, "type", "bridge")
            self._ip("link", "set", port.bridge, "up")
        probe = self.probe_namespace(port.network_id)
        if probe in self._namespaces() or port.gateway is None:
            return
        run(["ip", "netns", "add", probe])
        far = "prb" + port.network_id[:11]
        self._ip("link", "add", far, "type", "veth", "peer", "name", "eth0", "netns", probe)
        self._ip("link", "set", far, "master", port.bridge, "up")
        self._ip("addr", "add", port.gateway, "dev", "eth0", netns=probe)
        self._ip("link", "set", "eth0", "up", netns=probe)
        self._ip("link", "set", "lo", "up", netns=probe)

    def ensure(self, name: str, ports: Sequence[PortWire]) -> None:
        ns = self.namespace(name)
        if ns not in self._namespaces():
            run(["ip", "netns", "add", ns])
            self._ip("link", "set", "lo", "up", netns=ns)
        host_links = self._links()
        guest_links = self._links(netns=ns)
        for index, port in enumerate(ports):
            self._ensure_bridge(port)
            guest = f"eth{index}"
            if port.tap in host_links and guest not in guest_links:
                self._ip("link", "del", port.tap)  # half-made by a killed agent
                host_links.discard(port.tap)
            if port.tap not in host_links:
                self._ip(
                    "link", "add", port.tap, "type", "veth", "peer", "name", guest, "netns", ns
                )
                self._ip(
                    "link", "set", guest, "address", port.mac, "mtu", str(port.mtu_bytes), netns=ns
                )
                for address in port.addresses:
                    self._ip("addr", "add", address, "dev", guest, netns=ns)
            self._ip(
                "link", "set", port.tap, "master", port.bridge, "mtu", str(port.mtu_bytes), "up"
            )
            self._ip("link", "set", guest, "up", netns=ns)

    def remove(self, name: str) -> None:
        ns = self.namespace(name)
        if ns in self._namespaces():
            # Deleting the namespace deletes the guest ends, and with them the taps.
            run(["ip", "netns", "del", ns])

    def names(self) -> set[str]:
        probes = f"{self.prefix}probe-"
        return {
            n.removeprefix(self.prefix)
            for n in self._namespaces()
            if n.startswith(self.prefix) and not n.startswith(probes)
        }

    def ensure_ifb(self, device: str) -> None:
        if device not in self._links():
            self._ip("link", "add", device, "type", "ifb")
        self._ip("link", "set", device, "up")

    def remove_ifb(self, device: str) -> None:
        try:
            self._ip("link", "del", device)
        except HostError as exc:
            if "Cannot find device" not in exc.detail:
                raise

    def ifbs(self) -> set[str]:
        """The ifb devices qosplane names (ifb + 11 characters of a port id); others,
        like the kernel's ifb0, are not ours."""
        out = self._ip("-o", "link", "show", "type", "ifb")
        names = {line.split(":")[1].strip() for line in out.splitlines() if line.strip()}
        return {n for n in names if len(n) == IFB_NAME_LENGTH}

    def cleanup_network(self, network_id: str) -> None:
        probe = self.probe_namespace(network_id)
        if probe in self._namespaces():
            run(["ip", "netns", "del", probe])
        bridge = "brq" + network_id[:11]
        if bridge in self._links():
            self._ip("link", "del", bridge)


@dataclass
class FakeInstances:
    """In memory; keeps a FakeTrafficControl's device set in step when given one."""

    prefix: str = "qp-"
    instances: dict[str, tuple[PortWire, ...]] = field(default_factory=dict)
    ifb_devices: set[str] = field(default_factory=set)
    tc: FakeTrafficControl | None = None

    def namespace(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def probe_namespace(self, network_id: str) -> str:
        return f"{self.prefix}probe-{network_id[:8]}"

    def ensure(self, name: str, ports: Sequence[PortWire]) -> None:
        self.instances[name] = tuple(ports)
        for port in ports:
            if self.tc is not None:
                self.tc.add_device(port.tap)

    def remove(self, name: str) -> None:
        for port in self.instances.pop(name, ()):
            if self.tc is not None:
                self.tc.remove_device(port.tap)

    def names(self) -> set[str]:
        return set(self.instances)

    def ensure_ifb(self, device: str) -> None:
        self.ifb_devices.add(device)
        if self.tc is not None:
            self.tc.add_device(device)

    def remove_ifb(self, device: str) -> None:
        self.ifb_devices.discard(device)
        if self.tc is not None:
            self.tc.remove_device(device)

    def ifbs(self) -> set[str]:
        return set(self.ifb_devices)

    def cleanup_network(self, network_id: str) -> None:
        return None
