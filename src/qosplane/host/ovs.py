"""Open vSwitch: ports wired into a bridge, and their QoS as OVS enforces it.

- OVSDB through ovsdbapp (every transaction with check_error): the bridge, the ports
  (tagged with their network's local VLAN, as Neutron's OVS agent does), and a linux-htb
  QoS row with queue 0 per port for to-instance limits (Neutron's ingress bandwidth_limit).
- OpenFlow through ovs-ofctl: one OpenFlow 1.3 meter per metered port for from-instance
  limits, and table-0 flows per port (metering, DSCP set_field) cookied with the agent's
  tag so all of them are found, and only them, with one cookie mask.

Why meters and not Neutron's ingress_policing_rate: on the userspace (netdev) datapath OVS
accepts the column and silently enforces nothing (host-capabilities.md §3, measured 841
Mbit/s under a 3 Mbit/s rate); a meter is a userspace policer and holds.

OvsDaemons starts the agent's own ovsdb-server and ovs-vswitchd (userspace datapath) with
all state in one directory, when the host runs none. They outlive the agent, as the data
plane must.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

from qosplane.compiler.host_program import (
    OVS_COOKIE_MATCH,
    ovs_meter_spec,
    ovs_port_cookie,
    ovs_port_flows,
)
from qosplane.host.errors import HostError
from qosplane.host.process import in_netns, run
from qosplane.model.host_state import Meter, ObservedPort, OvsQueue, PortQos
from qosplane.model.units import Bits, BitsPerSecond, Kilobits, KilobitsPerSecond

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
SYSTEM_RUNDIR = Path("/var/run/openvswitch")  # a distribution's running OVS
OFCTL = ("ovs-ofctl", "-O", "OpenFlow13")
OVSDB_TIMEOUT_S = 10
OFPORT_WAIT_S = 3.0
VLAN_TAGS = range(1, 4095)


class Switch(Protocol):
    bridge: str

    def plug(self, port: str, *, network_id: str, owner: str, mac: str | None = None) -> None:
        """Add `port` to the bridge on its network's VLAN; `owner` is the instance (or the
        network's probe) it belongs to. Idempotent."""

    def unplug(self, port: str) -> None: ...

    def owners(self) -> dict[str, str]:
        """Port -> owner, for the ports this agent plugged."""

    def observe(self) -> dict[str, ObservedPort]:
        """Every plugged port's QoS as OVSDB and the OpenFlow tables show it."""

    def apply(self, desired: Sequence[PortQos]) -> int:
        """Bring every plugged port to `desired` (a port not listed: no QoS) and delete the
        agent's rows, meters and flows that belong to no plugged port. Returns the number
        of changes made."""


# --- the daemons --------------------------------------------------------------------------


@dataclass
class OvsDaemons:
    """ovsdb-server and ovs-vswitchd with every file under `state_dir`, run in `netns`
    (None: the agent's namespace); the netdev datapath needs no kernel module."""

    state_dir: Path
    netns: str | None = None

    @property
    def db(self) -> str:
        return f"unix:{self.state_dir / 'db.sock'}"

    def mgmt(self, bridge: str) -> str:
        """The bridge's OpenFlow management socket, for ovs-ofctl."""
        return f"unix:{self.state_dir / (bridge + '.mgmt')}"

    def _alive(self, name: str) -> bool:
        try:
            pid = int((self.state_dir / f"{name}.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def running(self) -> bool:
        return self._alive("ovsdb-server") and self._alive("ovs-vswitchd")

    def ensure(self) -> None:
        """Start whichever daemon is not running; a restarted agent reuses both."""
        d = self.state_dir
        d.mkdir(parents=True, exist_ok=True)
        common = ["-vconsole:off", "--detach", "--no-chdir"]
        if not self._alive("ovsdb-server"):
            if not (d / "conf.db").exists():
                run(["ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA)])
            run(
                in_netns(
                    self.netns,
                    [
                        "ovsdb-server",
                        str(d / "conf.db"),
                        f"--remote=punix:{d / 'db.sock'}",
                        f"--pidfile={d / 'ovsdb-server.pid'}",
                        f"--unixctl={d / 'ovsdb-server.ctl'}",
                        f"--log-file={d / 'ovsdb-server.log'}",
                        *common,
                    ],
                )
            )
            run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "init"])
        if not self._alive("ovs-vswitchd"):
            run(
                in_netns(
                    self.netns,
                    [
                        "env",
                        f"OVS_RUNDIR={d}",
                        "ovs-vswitchd",
                        self.db,
                        f"--pidfile={d / 'ovs-vswitchd.pid'}",
                        f"--unixctl={d / 'ovs-vswitchd.ctl'}",
                        f"--log-file={d / 'ovs-vswitchd.log'}",
                        *common,
                    ],
                )
            )

    def stop(self) -> None:
        """Stop both daemons (tests, uninstall); the state directory stays."""
        for name in ("ovs-vswitchd", "ovsdb-server"):
            try:
                pid = int((self.state_dir / f"{name}.pid").read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.02)


# --- OpenFlow text ------------------------------------------------------------------------

_METER = re.compile(r"meter=(\d+) kbps burst.*?\ntype=drop rate=(\d+) burst_size=(\d+)", re.S)
_COOKIE = re.compile(r"cookie=(0x[0-9a-f]+)")
_FLOW_METER = re.compile(r"actions=meter:(\d+)")
_FLOW_DSCP = re.compile(r"set_field:(\d+)->ip_dscp")


def parse_meters(text: str) -> dict[int, Meter]:
    """`ovs-ofctl dump-meters` -> meter id -> its drop band."""
    return {
        int(m): Meter(KilobitsPerSecond(int(rate)), Kilobits(int(burst)))
        for m, rate, burst in _METER.findall(text)
    }


def parse_flows(text: str) -> dict[str, list[str]]:
    """`ovs-ofctl --no-stats dump-flows` -> cookie -> its flows, one line each."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        found = _COOKIE.search(line)
        if found:
            out.setdefault(found.group(1), []).append(line.strip())
    return out


def observed_port(
    port: str,
    exists: bool,
    queue: OvsQueue | None,
    flows: Sequence[str],
    meters: Mapping[int, Meter],
    ofport: int,
) -> ObservedPort:
    """A port's QoS from its rows and flows: the meter its flows use, the DSCP its ip
    flow sets; `flows_match` when the flows are exactly what that QoS renders to."""
    meter_ids = {int(m) for flow in flows for m in _FLOW_METER.findall(flow)}
    dscps = {int(d) for flow in flows for d in _FLOW_DSCP.findall(flow)}
    meter = meters.get(next(iter(meter_ids))) if len(meter_ids) == 1 else None
    dscp = next(iter(dscps)) if len(dscps) == 1 else None
    qos = PortQos(port, queue, meter, dscp)
    rendered = ovs_port_flows(qos, ofport)
    return ObservedPort(
        qos, exists=exists, flows_match=sorted(rendered) == sorted(flows) and meter_ids <= {ofport}
    )


def _describe(exc: BaseException) -> str:
    """Some ovsdbapp exceptions fail their own str(); their class name still says it."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - describing an error must not raise another
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the real switch ----------------------------------------------------------------------


class RealSwitch:
    """One bridge of an OVS whose database is at `daemons.db`. Rows it writes carry
    external_ids qosplane-owner=<prefix>, and only those are ever changed or deleted."""

    def __init__(self, daemons: OvsDaemons, bridge: str = "br-int", prefix: str = "qp-") -> None:
        self.daemons = daemons
        # The userspace datapath unless the kernel has Open vSwitch's module.
        datapath = "system" if Path("/sys/module/openvswitch").exists() else "netdev"
        self.bridge = bridge
        self.tag = f"qosplane:{prefix}"
        try:
            idl = connection.OvsdbIdl.from_server(daemons.db, "Open_vSwitch")
            self._conn = connection.Connection(idl=idl, timeout=OVSDB_TIMEOUT_S)
            # ovsdbapp keeps the first connection on the API class and reuses it for every
            # later instance; a class of its own per switch keeps each to its database.
            api_class = type("SwitchOvsdb", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
            self.api = api_class(self._conn)
        except Exception as exc:  # ovsdbapp raises bare Exceptions on connect
            raise HostError(f"connect to OVSDB {daemons.db}", _describe(exc)) from exc
        self._txn(
            lambda api: [
                api.add_br(self.bridge, datapath_type=datapath),
                api.db_set("Bridge", self.bridge, ("protocols", ["OpenFlow10", "OpenFlow13"])),
                api.db_set("Bridge", self.bridge, ("fail_mode", "standalone")),
            ],
            f"add bridge {self.bridge}",
        )

    def close(self) -> None:
        self._conn.stop()

    # OVSDB ----------------------------------------------------------------------------
    def _txn(self, build: Any, operation: str) -> None:
        """One transaction, all or nothing; any OVSDB error is the caller's HostError."""
        try:
            with self.api.transaction(check_error=True) as txn:
                for command in build(self.api):
                    txn.add(command)
        except HostError:
            raise
        except Exception as exc:  # ovsdbapp: RuntimeError, TimeoutException, ...
            raise HostError(operation, _describe(exc)) from exc

    def _rows(self, table: str) -> list[Any]:
        return list(self.api.tables[table].rows.values())

    def _our_ports(self) -> dict[str, Any]:
        return {
            row.name: row
            for row in self._rows("Port")
            if row.external_ids.get("qosplane-owner") == self.tag
        }

    def _vlan_for(self, network_id: str, ports: Mapping[str, Any]) -> int:
        used: set[int] = set()
        for row in ports.values():
            tag = row.tag[0] if row.tag else None
            if tag is None:
                continue
            if row.external_ids.get("qosplane-network") == network_id:
                return int(tag)
            used.add(int(tag))
        for tag in VLAN_TAGS:
            if tag not in used:
                return tag
        raise HostError(f"plug into {self.bridge}", "every VLAN tag is in use")

    def plug(self, port: str, *, network_id: str, owner: str, mac: str | None = None) -> None:
        ports = self._our_ports()
        existing = {row.name for row in self._rows("Port")}
        if port in existing and port not in ports:
            raise HostError(f"plug {port}", "an OVS port of that name exists and is not ours")
        vlan = self._vlan_for(network_id, ports)
        port_ids = {
            "qosplane-owner": self.tag,
            "qosplane-instance": owner,
            "qosplane-network": network_id,
        }
        iface_ids = {"attached-mac": mac} if mac else {}
        self._txn(
            lambda api: [
                api.add_port(self.bridge, port, may_exist=True),
                api.db_set("Port", port, ("tag", vlan), ("external_ids", port_ids)),
                *(
                    [api.db_set("Interface", port, ("external_ids", iface_ids))]
                    if iface_ids
                    else []
                ),
            ],
            f"plug {port} into {self.bridge}",
        )

    def unplug(self, port: str) -> None:
        """The port with everything the agent made for it: QoS rows, flows, meter."""
        if port not in self._our_ports():
            return
        ofport = self._ofports().get(port, -1)
        mgmt = self.daemons.mgmt(self.bridge)
        self._ofctl("del-flows", mgmt, f"cookie={ovs_port_cookie(port)}/-1")
        if ofport > 0:
            self._ofctl("del-meter", mgmt, f"meter={ofport}")
        # Two transactions: OVSDB refuses to destroy the QoS rows in the one that also
        # deletes the port referencing them (referential integrity, measured).
        self._txn(lambda api: self._destroy_qos_commands(api, port), f"unplug {port}")
        self._txn(
            lambda api: [api.del_port(port, bridge=self.bridge, if_exists=True)],
            f"unplug {port}",
        )

    def owners(self) -> dict[str, str]:
        return {
            name: str(row.external_ids.get("qosplane-instance", ""))
            for name, row in self._our_ports().items()
        }

    def _qos_rows(self) -> dict[str, list[Any]]:
        """Port name -> the agent's QoS rows made for it (normally one)."""
        out: dict[str, list[Any]] = {}
        for row in self._rows("QoS"):
            if row.external_ids.get("qosplane-owner") == self.tag:
                out.setdefault(str(row.external_ids.get("qosplane-port")), []).append(row)
        return out

    def _queue_of(self, port_row: Any) -> OvsQueue | None:
        if not port_row.qos:
            return None
        qos = port_row.qos[0]
        queue = qos.queues.get(0)
        if qos.type != "linux-htb" or queue is None:
            return None
        try:
            return OvsQueue(
                BitsPerSecond(int(queue.other_config["max-rate"])),
                Bits(int(queue.other_config["burst"])),
            )
        except (KeyError, ValueError):
            return None  # a hand-edited row: drift, rewritten whole

    def _ofports(self) -> dict[str, int]:
        out = {}
        for row in self._rows("Interface"):
            ofport = row.ofport[0] if row.ofport else -1
            out[row.name] = int(ofport)
        return out

    def _destroy_qos_commands(self, api: Any, port: str) -> list[Any]:
        commands = []
        if port in {row.name for row in self._rows("Port")}:
            commands.append(api.db_clear("Port", port, "qos"))
        for qos in self._qos_rows().get(port, []):
            commands.append(api.db_destroy("QoS", qos.uuid))
            commands += [api.db_destroy("Queue", q.uuid) for q in qos.queues.values()]
        return commands

    # OpenFlow -------------------------------------------------------------------------
    def _ofctl(self, *args: str, input_text: str | None = None) -> str:
        return run([*OFCTL, *args], input_text)

    def _dump(self) -> tuple[dict[str, list[str]], dict[int, Meter]]:
        mgmt = self.daemons.mgmt(self.bridge)
        flows = parse_flows(self._ofctl("--no-stats", "dump-flows", mgmt, OVS_COOKIE_MATCH))
        meters = parse_meters(self._ofctl("dump-meters", mgmt))
        return flows, meters

    def observe(self) -> dict[str, ObservedPort]:
        flows, meters = self._dump()
        ofports = self._ofports()
        out = {}
        for name, row in self._our_ports().items():
            out[name] = observed_port(
                name,
                name in {p.name for p in self._bridge_ports()},
                self._queue_of(row),
                flows.get(ovs_port_cookie(name), []),
                meters,
                ofports.get(name, -1),
            )
        return out

    def _bridge_ports(self) -> list[Any]:
        for row in self._rows("Bridge"):
            if row.name == self.bridge:
                return list(row.ports)
        return []

    def _wait_ofports(self, ports: Sequence[str]) -> dict[str, int]:
        """vswitchd assigns an OpenFlow port number a moment after the Port row appears."""
        deadline = time.monotonic() + OFPORT_WAIT_S
        while True:
            ofports = self._ofports()
            if all(ofports.get(p, -1) > 0 for p in ports) or time.monotonic() > deadline:
                return ofports
            time.sleep(0.01)

    def apply(self, desired: Sequence[PortQos]) -> int:
        wanted = {q.port: q for q in desired}
        ours = self._our_ports()
        missing = sorted(set(wanted) - set(ours))
        if missing:
            raise HostError(f"QoS on {self.bridge}", f"ports not plugged: {', '.join(missing)}")
        ofports = self._wait_ofports(sorted(wanted))
        unnumbered = [p for p in sorted(wanted) if ofports.get(p, -1) <= 0]
        if unnumbered:
            raise HostError(
                f"QoS on {self.bridge}",
                f"no OpenFlow port number for {', '.join(unnumbered)} (device missing?)",
            )
        changes = 0
        changes += self._apply_queues(wanted, ours)
        flows, meters = self._dump()
        mgmt = self.daemons.mgmt(self.bridge)
        want_meters = {
            ofports[q.port]: q.from_instance for q in desired if q.from_instance is not None
        }
        for meter_id, meter in sorted(want_meters.items()):
            if meters.get(meter_id) == meter:
                continue
            verb = "mod-meter" if meter_id in meters else "add-meter"
            self._ofctl(verb, mgmt, ovs_meter_spec(meter_id, meter))
            changes += 1
        lines = []
        cookies = {ovs_port_cookie(p): p for p in ours}
        for cookie, current in sorted(flows.items()):
            port = cookies.get(cookie)
            rendered = sorted(ovs_port_flows(wanted[port], ofports[port])) if port in wanted else []
            if sorted(current) != rendered:
                lines.append(f"delete cookie={cookie}/-1")
        for port, qos in sorted(wanted.items()):
            cookie = ovs_port_cookie(port)
            rendered = sorted(ovs_port_flows(qos, ofports[port]))
            if sorted(flows.get(cookie, [])) != rendered:
                if cookie not in flows:
                    lines.append(f"delete cookie={cookie}/-1")
                lines += [f"add {flow.replace(', ', ',', 1)}" for flow in rendered]
        if lines:
            # One process, in order: a port's old flows go before its new ones come.
            self._ofctl("add-flows", mgmt, "-", input_text="\n".join(lines) + "\n")
            changes += len(lines)
        for meter_id in sorted(set(meters) - set(want_meters)):
            self._ofctl("del-meter", mgmt, f"meter={meter_id}")
            changes += 1
        return changes

    def _apply_queues(self, wanted: Mapping[str, PortQos], ours: Mapping[str, Any]) -> int:
        rows = self._qos_rows()
        commands: list[Any] = []
        changed = 0
        for name, row in sorted(ours.items()):
            qos = wanted.get(name)
            queue = qos.to_instance if qos is not None else None
            current = self._queue_of(row)
            stray = [r for r in rows.get(name, []) if not row.qos or r.uuid != row.qos[0].uuid]
            if current == queue and not stray:
                continue
            changed += 1
            commands.append((name, queue))
        if not commands:
            return 0

        def build(api: Any) -> list[Any]:
            out: list[Any] = []
            for name, queue in commands:
                out += self._destroy_qos_commands(api, name)
                if queue is None:
                    continue
                ids = {"qosplane-owner": self.tag, "qosplane-port": name}
                q0 = api.db_create(
                    "Queue",
                    other_config={
                        "max-rate": str(queue.max_rate_bits_per_s),
                        "burst": str(queue.burst_bits),
                    },
                    external_ids=ids,
                )
                qos_row = api.db_create(
                    "QoS",
                    type="linux-htb",
                    other_config={"max-rate": str(queue.max_rate_bits_per_s)},
                    queues={0: q0},
                    external_ids=ids,
                )
                out += [q0, qos_row, api.db_set("Port", name, ("qos", qos_row))]
            return out

        self._txn(build, f"QoS rows on {self.bridge}")
        return changed

    def remove_everything(self) -> None:
        """Tests and uninstall: every port, row, meter and flow this agent made."""
        for port in sorted(self._our_ports()):
            self.unplug(port)
        self.apply([])


# --- the fake -----------------------------------------------------------------------------


@dataclass
class FakeSwitch:
    """In memory, with the real switch's semantics: QoS only on plugged ports, ports
    keep their owner, a removed row or flow shows up in observe()."""

    bridge: str = "br-int"
    ports: dict[str, str] = field(default_factory=dict)  # port -> owner
    qos: dict[str, PortQos] = field(default_factory=dict)
    changes: int = 0

    def plug(self, port: str, *, network_id: str, owner: str, mac: str | None = None) -> None:
        self.ports[port] = owner

    def unplug(self, port: str) -> None:
        self.ports.pop(port, None)
        self.qos.pop(port, None)

    def owners(self) -> dict[str, str]:
        return dict(self.ports)

    def observe(self) -> dict[str, ObservedPort]:
        return {p: ObservedPort(self.qos.get(p, PortQos(p))) for p in self.ports}

    def apply(self, desired: Sequence[PortQos]) -> int:
        missing = sorted({q.port for q in desired} - set(self.ports))
        if missing:
            raise HostError(f"QoS on {self.bridge}", f"ports not plugged: {', '.join(missing)}")
        before = dict(self.qos)
        self.qos = {q.port: q for q in desired if q != PortQos(q.port)}
        changed = sum(1 for p in set(before) | set(self.qos) if before.get(p) != self.qos.get(p))
        self.changes += changed
        return changed
