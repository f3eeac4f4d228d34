"""The netns instance driver (design.md §4): an instance is a network namespace with one
veth pair per port. The host side is named like Nova's tap (tap + 11 characters of the
port id) and joins its network's bridge (brq + 11 characters of the network id, as
Neutron's linuxbridge names it); the guest side, eth0.., carries the port's MAC and IPs.
Each network also gets a probe namespace on its bridge holding the subnet's gateway
address, the far end `verify` measures against.

With a `switch` (an Open vSwitch bridge, host/ovs.py) the taps and probes are ports of
that bridge on their network's VLAN instead, as Nova plugs taps into br-int; the guest
and probe ends then get tx checksum offload turned off, since the userspace datapath
forwards TCP with the checksums the veth left unfilled (host-capabilities.md §3).

Everything is created in `host_netns` (None: the agent's own namespace), and every name
starts with `prefix`, so a host (or a test) can list and remove exactly what it owns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qosplane.host.errors import HostError
from qosplane.host.ovs import PortPlugs
from qosplane.host.process import in_netns, run
from qosplane.host.tc import FakeTrafficControl


@dataclass(frozen=True, slots=True)
class PortWire:
    tap: str
    mac: str
    network_id: str
    addresses: tuple[str, ...]  # CIDR form, 10.0.0.3/24
    gateway: str | None = None  # CIDR form, the probe's address
    mtu_bytes: int = 1500
    port_id: str = ""  # the Neutron port (OVS iface-id, OVN logical switch port)

    @property
    def bridge(self) -> str:
        return "brq" + self.network_id[:11]

    @property
    def probe_port(self) -> str:
        """The host side of the network's probe namespace."""
        return "prb" + self.network_id[:11]


PROBE_OWNER = "probe-"  # + the network id's first 8 characters: a probe port's owner
# verify's two unshaped ends on a network, to measure what its path carries without a
# limit: never an instance, so a running agent neither lists nor removes them.
SCRATCH_OWNER = "scratch-"
SCRATCH_ADDRESS = "169.254.0.{}/16"  # link-local: on the network's L2, in no tenant subnet


def scratch_wires(network_id: str, mtu_bytes: int) -> tuple[tuple[str, PortWire], ...]:
    """The sending and the receiving scratch end on `network_id`: (name, its one port).
    Taps `tapsa`/`tapsb` + 10 characters of the network id: no port id (hex) matches.
    Locally administered MACs from a hash of the id, which need not be hex."""
    mac = hashlib.sha256(network_id.encode()).hexdigest()
    return tuple(
        (
            f"{SCRATCH_OWNER}{network_id[:8]}-{end}",
            PortWire(
                f"taps{end}{network_id[:10]}",
                f"02:00:{mac[0:2]}:{mac[2:4]}:{mac[4:6]}:0{n}",
                network_id,
                (SCRATCH_ADDRESS.format(n),),
                mtu_bytes=mtu_bytes,
            ),
        )
        for n, end in ((1, "a"), (2, "b"))
    )


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

    def ifbs_up(self) -> set[str]:
        """Those of `ifbs()` that are up: a down ifb drops everything redirected to it."""

    def networks(self) -> set[str]:
        """The networks (first 8 characters of their ids) this agent has wired."""

    def miswired(self, ports: Sequence[PortWire]) -> set[str]:
        """The taps of `ports` that exist but are down or out of their Linux bridge (an
        `ip link set TAP nomaster` or `down` behind the agent's back): the instance is cut
        off though every limit still reads right."""

    def cleanup_network(self, network_prefix: str) -> None: ...


class RealInstances:
    """Devices it creates carry the link alias `qosplane:<prefix>`: only those are ever
    deleted or claimed, so a host's own taps, ifbs and bridges (a Nova VM's tap has the
    same name pattern) are left alone."""

    def __init__(
        self,
        prefix: str = "qp-",
        host_netns: str | None = None,
        switch: PortPlugs | None = None,
        guest_taps: bool = False,
    ) -> None:
        """`guest_taps`: the hypervisor makes each port's tap, a real guest's NIC in the
        network's bridge (host/hypervisor.py); this driver then makes the bridge, the
        probe and the (empty) namespace that names the instance, and no veths."""
        self.prefix = prefix
        self.host_netns = host_netns
        self.switch = switch
        self.guest_taps = guest_taps
        self.tag = f"qosplane:{prefix}"

    def _ip(self, *args: str, netns: str | None = None) -> str:
        where = netns if netns is not None else self.host_netns
        return run(["ip", *(["-n", where] if where else []), *args])

    def _ip_batch(self, *lines: str) -> None:
        """Several `ip` commands in one process: an agent killed meanwhile does not stop
        it, so a device is never left created but untagged."""
        where = ["-n", self.host_netns] if self.host_netns else []
        run(["ip", *where, "-batch", "-"], "\n".join(lines) + "\n")

    def namespace(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def probe_namespace(self, network_id: str) -> str:
        return f"{self.prefix}probe-{network_id[:8]}"

    def _namespaces(self) -> set[str]:
        out = run(["ip", "netns", "list"])
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def _links(
        self, netns: str | None = None, kind: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Name -> `ip -j link` entry."""
        args = ["-j", "link", "show", *(["type", kind] if kind else [])]
        return {link["ifname"]: link for link in json.loads(self._ip(*args, netns=netns) or "[]")}

    def _ours(self, link: dict[str, Any] | None) -> bool:
        return link is not None and link.get("ifalias") == self.tag

    def _no_tx_offload(self, device: str, netns: str) -> None:
        run(in_netns(netns, ["ethtool", "-K", device, "tx", "off"]))

    def _ensure_bridge(self, port: PortWire, host_links: dict[str, dict[str, Any]]) -> None:
        if self.switch is None and port.bridge not in host_links:
            self._ip_batch(
                f"link add {port.bridge} type bridge",
                f"link set {port.bridge} alias {self.tag} up",
            )
        probe = self.probe_namespace(port.network_id)
        far = port.probe_port
        if probe in self._namespaces() or port.gateway is None:
            if self.switch is not None and port.gateway is not None:
                self.switch.plug(
                    far, network_id=port.network_id, owner=PROBE_OWNER + port.network_id[:8]
                )
            return
        run(["ip", "netns", "add", probe])
        self._ip("link", "add", far, "type", "veth", "peer", "name", "eth0", "netns", probe)
        if self.switch is None:
            self._ip("link", "set", far, "master", port.bridge, "alias", self.tag, "up")
        else:
            self._ip("link", "set", far, "alias", self.tag, "up")
            self.switch.plug(
                far, network_id=port.network_id, owner=PROBE_OWNER + port.network_id[:8]
            )
            self._no_tx_offload("eth0", probe)
        self._ip("addr", "add", port.gateway, "dev", "eth0", netns=probe)
        self._ip("link", "set", "eth0", "up", netns=probe)
        self._ip("link", "set", "lo", "up", netns=probe)

    @staticmethod
    def guest_name(port: PortWire) -> str:
        """The guest side, named after its port so attaching and detaching ports never
        renames another one: `eth` + the 11 characters of the tap."""
        return "eth" + port.tap.removeprefix("tap")

    def ensure(self, name: str, ports: Sequence[PortWire]) -> None:
        ns = self.namespace(name)
        if ns not in self._namespaces():
            run(["ip", "netns", "add", ns])
            self._ip("link", "set", "lo", "up", netns=ns)
        host_links = self._links()
        guest_links = self._links(netns=ns)
        wanted = {self.guest_name(p) for p in ports}
        for stale in sorted(set(guest_links) - wanted - {"lo"}):
            self._ip("link", "del", stale, netns=ns)  # a detached port: its tap goes too
            if self.switch is not None:
                self.switch.unplug("tap" + stale.removeprefix("eth"))
        # verify's scratch ends are namespaces with veths whatever runs the instances.
        veths = not self.guest_taps or name.startswith(SCRATCH_OWNER)
        for port in ports:
            self._ensure_bridge(port, host_links)
            if not veths:
                continue
            guest = self.guest_name(port)
            if port.tap in host_links and guest not in guest_links:
                # Both ends of a veth are made at once, so a tap whose peer is not in this
                # instance's namespace was not made here, unless it is ours: the kernel
                # deletes a removed namespace's veths asynchronously, so one recreated at
                # once can meet its old tap. Ours goes; someone else's is never touched.
                if not self._ours(host_links[port.tap]):
                    raise HostError(
                        f"plug {port.tap}", "a device of that name exists and is not qosplane's"
                    )
                self._delete_link(port.tap)
                del host_links[port.tap]
            if port.tap not in host_links:
                self._ip_batch(
                    f"link add {port.tap} type veth peer name {guest} netns {ns}",
                    f"link set {port.tap} alias {self.tag}",
                )
            # Idempotent: finishes what a killed pass left between these steps.
            self._ip(
                "link", "set", guest, "address", port.mac, "mtu", str(port.mtu_bytes), netns=ns
            )
            for address in port.addresses:
                self._ip("addr", "replace", address, "dev", guest, netns=ns)
            if self.switch is None:
                self._ip(
                    "link", "set", port.tap, "master", port.bridge, "mtu", str(port.mtu_bytes), "up"
                )
            else:
                self._ip("link", "set", port.tap, "mtu", str(port.mtu_bytes), "up")
                self.switch.plug(
                    port.tap,
                    network_id=port.network_id,
                    owner=name,
                    mac=port.mac,
                    port_id=port.port_id or None,
                )
                self._no_tx_offload(guest, ns)
            self._ip("link", "set", guest, "up", netns=ns)

    def _delete_link(self, name: str) -> None:
        try:
            self._ip("link", "del", name)
        except HostError as exc:
            if "Cannot find device" not in exc.detail:  # gone meanwhile: what we wanted
                raise

    def miswired(self, ports: Sequence[PortWire]) -> set[str]:
        if self.switch is not None or not ports:
            return set()  # OVS ports: the switch driver sees an unplugged or down tap
        links = self._links()
        out = set()
        for port in ports:
            link = links.get(port.tap)
            if link is None:
                continue  # missing altogether: tc's observation names it
            if "UP" not in link.get("flags", []) or link.get("master") != port.bridge:
                out.add(port.tap)
        return out

    def remove(self, name: str) -> None:
        ns = self.namespace(name)
        if ns in self._namespaces():
            # Deleting the namespace deletes the guest ends, and with them the taps.
            run(["ip", "netns", "del", ns])
        if self.switch is not None:
            for port, owner in sorted(self.switch.owners().items()):
                if owner == name:
                    self.switch.unplug(port)

    def names(self) -> set[str]:
        probes, scratch = f"{self.prefix}{PROBE_OWNER}", f"{self.prefix}{SCRATCH_OWNER}"
        return {
            n.removeprefix(self.prefix)
            for n in self._namespaces()
            if n.startswith(self.prefix) and not n.startswith((probes, scratch))
        }

    def ensure_ifb(self, device: str) -> None:
        links = self._links(kind="ifb")
        if device not in links:
            self._ip_batch(f"link add {device} type ifb", f"link set {device} alias {self.tag}")
        elif not self._ours(links[device]):
            raise HostError(
                f"add ifb {device}", "a device of that name exists and is not qosplane's"
            )
        self._ip("link", "set", device, "up")

    def remove_ifb(self, device: str) -> None:
        self._delete_link(device)

    def ifbs(self) -> set[str]:
        """The ifb devices this agent made; others (the kernel's ifb0) are not ours."""
        return {name for name, link in self._links(kind="ifb").items() if self._ours(link)}

    def ifbs_up(self) -> set[str]:
        return {
            name
            for name, link in self._links(kind="ifb").items()
            if self._ours(link) and "UP" in link.get("flags", [])
        }

    def cleanup_network(self, network_prefix: str) -> None:
        """Remove the probe namespace and bridge of a network no instance here uses, and
        the scratch ends a killed verify may have left on it."""
        probe = self.probe_namespace(network_prefix)
        scratch = f"{self.prefix}{SCRATCH_OWNER}{network_prefix[:8]}-"
        for ns in sorted(self._namespaces()):
            if ns == probe or ns.startswith(scratch):
                run(["ip", "netns", "del", ns])
        if self.switch is not None:
            for port, owner in sorted(self.switch.owners().items()):
                if owner == PROBE_OWNER + network_prefix[:8] or owner.startswith(
                    f"{SCRATCH_OWNER}{network_prefix[:8]}-"
                ):
                    self.switch.unplug(port)
        for name, link in self._links(kind="bridge").items():
            if name.startswith("brq" + network_prefix[:8]) and self._ours(link):
                self._ip("link", "del", name)

    def remove_everything(self) -> None:
        """Tests, benchmarks and uninstall: every namespace with this prefix (instances and
        probes; their taps go with them)."""
        for ns in sorted(n for n in self._namespaces() if n.startswith(self.prefix)):
            run(["ip", "netns", "del", ns])

    def networks(self) -> set[str]:
        """Network id prefixes of the probe namespaces this agent made."""
        probes = f"{self.prefix}probe-"
        return {n.removeprefix(probes) for n in self._namespaces() if n.startswith(probes)}


@dataclass
class FakeInstances:
    """In memory; keeps a FakeTrafficControl's device set in step when given one."""

    prefix: str = "qp-"
    instances: dict[str, tuple[PortWire, ...]] = field(default_factory=dict)
    ifb_devices: set[str] = field(default_factory=set)
    ifbs_down: set[str] = field(default_factory=set)
    tc: FakeTrafficControl | None = None
    switch: PortPlugs | None = None
    unplugged: set[str] = field(default_factory=set)

    def namespace(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def probe_namespace(self, network_id: str) -> str:
        return f"{self.prefix}probe-{network_id[:8]}"

    def ensure(self, name: str, ports: Sequence[PortWire]) -> None:
        self.instances[name] = tuple(ports)
        for port in ports:
            self.unplugged.discard(port.tap)
            if self.tc is not None:
                self.tc.add_device(port.tap)
            if self.switch is not None:
                self.switch.plug(
                    port.tap,
                    network_id=port.network_id,
                    owner=name,
                    mac=port.mac,
                    port_id=port.port_id or None,
                )

    def remove(self, name: str) -> None:
        for port in self.instances.pop(name, ()):
            if self.tc is not None:
                self.tc.remove_device(port.tap)
            if self.switch is not None:
                self.switch.unplug(port.tap)

    def names(self) -> set[str]:
        return {n for n in self.instances if not n.startswith(SCRATCH_OWNER)}

    def ensure_ifb(self, device: str) -> None:
        self.ifb_devices.add(device)
        self.ifbs_down.discard(device)
        if self.tc is not None:
            self.tc.add_device(device)

    def remove_ifb(self, device: str) -> None:
        self.ifb_devices.discard(device)
        if self.tc is not None:
            self.tc.remove_device(device)

    def ifbs(self) -> set[str]:
        return set(self.ifb_devices)

    def ifbs_up(self) -> set[str]:
        return self.ifb_devices - self.ifbs_down

    def miswired(self, ports: Sequence[PortWire]) -> set[str]:
        return {p.tap for p in ports if p.tap in self.unplugged}

    def unplug_behind_the_agents_back(self, tap: str) -> None:
        """Tests: what `ip link set TAP nomaster` (or `down`) does."""
        self.unplugged.add(tap)

    def set_ifb_down(self, device: str) -> None:
        """Tests: what `ip link set IFB down` behind the agent's back does."""
        self.ifbs_down.add(device)

    def networks(self) -> set[str]:
        return {p.network_id[:8] for ports in self.instances.values() for p in ports}

    def cleanup_network(self, network_prefix: str) -> None:
        return None
