"""Open vSwitch: ports wired into a bridge, and their QoS as OVS enforces it.

- OVSDB through ovsdbapp (every transaction with check_error): the bridge, the ports
  (tagged with their network's local VLAN, as Neutron's OVS agent does), and a linux-htb
  QoS row with queue 0 per port for to-instance limits (Neutron's ingress bandwidth_limit).
- OpenFlow 1.3 over one connection to the bridge's management socket (host/openflow.py):
  Neutron's pipeline (tables 58, 59, 60: compiler/enforcement/backends/ovs.py) with up to
  three meters per port (bandwidth from it, packet rate from and to it) and its flows
  (metering, DSCP set_field) cookied with the agent's tag so all of them are found, and
  only them, with one cookie mask. A pass reads them with two requests and writes every
  change it needs as messages followed by one barrier; no process per object.

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
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

# os-ken brings eventlet along; the ovs library's poller imports it when present, which
# prints eventlet's deprecation notice. The agent never runs eventlet.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
# ... and eventlet brings dnspython, whose DNSSEC module names cryptography's DSA classes,
# which cryptography deprecates (51.0 here): a notice on every command's stderr.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"dns\.")

from ovsdbapp.backend.ovs_idl import connection, idlutils  # noqa: E402 - after the filter above
from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: E402

from qosplane.compiler.enforcement.program import (  # noqa: E402
    OVS_BASE_COOKIE,
    OVS_COOKIE_MASK,
    OVS_COOKIE_TAG,
    OVS_METADATA_MASK,
    OVS_TABLE_BANDWIDTH_FROM,
    OVS_TABLE_PACKETS_FROM,
    OVS_TABLE_TO,
    openflow_changes,
    ovs_base_flows,
    ovs_meter_ids,
    ovs_port_cookie,
    ovs_port_flows,
    ovs_port_meters,
)
from qosplane.host.errors import HostError  # noqa: E402
from qosplane.host.openflow import OpenFlowChannel  # noqa: E402
from qosplane.host.process import in_netns, run  # noqa: E402
from qosplane.model.host_state import (  # noqa: E402
    FlowsDelete,
    Meter,
    MeterDelete,
    ObservedPort,
    OpenFlowChange,
    OvsFlow,
    OvsQueue,
    PacketLimit,
    PortQos,
)
from qosplane.model.units import (  # noqa: E402
    Bits,
    BitsPerSecond,
    Kilobits,
    KilobitsPerSecond,
    Packets,
    PacketsPerSecond,
)

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
SYSTEM_RUNDIR = Path("/var/run/openvswitch")  # a distribution's running OVS
SYSTEM_DB = f"unix:{SYSTEM_RUNDIR / 'db.sock'}"
OVSDB_TIMEOUT_S = 10
OFPORT_WAIT_S = 3.0
VLAN_TAGS = range(1, 4095)
_T = TypeVar("_T")
# The Interface columns the agent reads or ovsdbapp's add_br/add_port write.
INTERFACE_COLUMNS = (
    "name",
    "type",
    "ofport",
    "ofport_request",
    "admin_state",
    "external_ids",
    "options",
)


class PortPlugs(Protocol):
    """What wires instances into a switch (host/instances.py): OVS, or OVN's br-int."""

    bridge: str

    def plug(
        self,
        port: str,
        *,
        network_id: str,
        owner: str,
        mac: str | None = None,
        port_id: str | None = None,
    ) -> None:
        """Add `port` to the bridge on its network; `owner` is the instance (or the
        network's probe) it belongs to, `port_id` the Neutron port (os-vif's iface-id).
        Idempotent."""

    def unplug(self, port: str) -> None: ...

    def owners(self) -> dict[str, str]:
        """Port -> owner, for the ports this agent plugged."""


class Switch(PortPlugs, Protocol):
    def observe(self) -> dict[str, ObservedPort]:
        """Every plugged port's QoS as OVSDB and the OpenFlow tables show it."""

    def apply(self, desired: Sequence[PortQos], leave: Collection[str] = ()) -> SwitchResult:
        """Bring every plugged port to `desired` (a port not listed and not in `leave`: no
        QoS) and delete the agent's rows, meters and flows that belong to no plugged port.
        Ports in `leave` (their server failed this pass) are not touched. A port that cannot
        be configured (no OpenFlow number: its device is gone) fails alone."""


@dataclass(frozen=True, slots=True)
class SwitchResult:
    changes: int = 0
    failed: Mapping[str, str] = field(default_factory=dict)  # port -> why


# --- the daemons --------------------------------------------------------------------------


@dataclass
class OvsDaemons:
    """ovsdb-server and ovs-vswitchd with every file under `state_dir`, run in `netns`
    (None: the agent's namespace); the netdev datapath needs no kernel module."""

    state_dir: Path
    netns: str | None = None
    managed: bool = True  # the agent's own (restarted when found dead), not the host's

    @property
    def db(self) -> str:
        return f"unix:{self.state_dir / 'db.sock'}"

    def mgmt(self, bridge: str) -> str:
        """The bridge's OpenFlow management socket, as ovs-ofctl names it."""
        return f"unix:{self.mgmt_path(bridge)}"

    def mgmt_path(self, bridge: str) -> Path:
        return self.state_dir / f"{bridge}.mgmt"

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


def interface_policing_text(db: str) -> str:
    """`ovs-vsctl list Interface` with the name and policing columns of every interface
    of the OVS whose database is `db`, the agent's or not (`inspect` reads what Neutron's
    agent or libvirt wrote). Read-only."""
    return run(
        [
            "ovs-vsctl",
            f"--db={db}",
            "--timeout=5",
            "--columns=name,ingress_policing_rate,ingress_policing_burst",
            "list",
            "Interface",
        ]
    )


# --- OpenFlow text (ovs-ofctl's, as tools, tests and inspect read a bridge) ----------------

_METER_ID = re.compile(r"^meter=(\d+)\b", re.M)
_DROP_BAND = re.compile(r"type=drop rate=(\d+) burst_size=(\d+)")
_FLOW_LINE = re.compile(
    r"cookie=(0x[0-9a-f]+), (?:table=(\d+), )?priority=(\d+)(?:,(\S*))? actions=(\S+)"
)


def parse_meters(text: str) -> dict[int, Meter | PacketLimit | None]:
    """`ovs-ofctl dump-meters` -> meter id -> its one drop band with a burst, kbps (Meter)
    or pktps (PacketLimit); None for a meter of another shape (no burst, several bands,
    dscp_remark), which is never ours as it stands. Every id is listed, so an existing id
    is modified, never added twice."""
    out: dict[int, Meter | PacketLimit | None] = {}
    starts = list(_METER_ID.finditer(text))
    for i, start in enumerate(starts):
        block = text[start.start() : starts[i + 1].start() if i + 1 < len(starts) else None]
        bands = _DROP_BAND.findall(block)
        header = f" {block.splitlines()[0]} "
        meter: Meter | PacketLimit | None = None
        if len(bands) == 1 and block.count("type=") == 1 and " burst " in header:
            rate, burst = int(bands[0][0]), int(bands[0][1])
            if " kbps " in header:
                meter = Meter(KilobitsPerSecond(rate), Kilobits(burst))
            elif " pktps " in header:
                meter = PacketLimit(PacketsPerSecond(rate), Packets(burst))
        out[int(start.group(1))] = meter
    return out


def parse_flow(line: str) -> OvsFlow | None:
    """One line of `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` as the typed flow the
    OpenFlow channel reads; None for a line that is no flow."""
    found = _FLOW_LINE.search(line)
    if found is None:
        return None
    cookie, table, priority, match, actions = found.groups()
    odd: list[str] = []
    in_port, ipv4, eth_dst = 0, False, None
    metadata: int | None = None
    written: int | None = None
    for part in filter(None, (match or "").split(",")):
        if part == "ip":
            ipv4 = True
        elif part.startswith("in_port="):
            in_port = int(part.removeprefix("in_port="))
        elif part.startswith("dl_dst=") and "/" not in part:
            eth_dst = part.removeprefix("dl_dst=")
        elif part.startswith("metadata=") and part.endswith(f"/{OVS_METADATA_MASK:#x}"):
            metadata = int(part.removeprefix("metadata=").split("/")[0], 16)
        else:
            odd.append(part)
    meter_id: int | None = None
    dscp: int | None = None
    goto: int | None = None
    outputs = 0
    for action in actions.split(","):
        if action.startswith("meter:"):
            meter_id = int(action.removeprefix("meter:"))
        elif action.startswith("set_field:") and action.endswith("->ip_dscp"):
            dscp = int(action.removeprefix("set_field:").removesuffix("->ip_dscp"))
        elif action == "NORMAL":
            outputs += 1
        elif action.startswith("write_metadata:") and action.endswith(f"/{OVS_METADATA_MASK:#x}"):
            written = int(action.removeprefix("write_metadata:").split("/")[0], 16)
        elif action.startswith("goto_table:"):
            goto = int(action.removeprefix("goto_table:"))
            outputs += 1
        else:
            odd.append(f"action {action}")
    if outputs != 1:
        odd.append(f"{outputs} outputs (NORMAL or goto_table)")
    return OvsFlow(
        int(cookie, 16),
        int(priority),
        in_port,
        ipv4,
        meter_id,
        dscp,
        table=int(table or 0),
        eth_dst=eth_dst,
        goto_table=goto,
        metadata=metadata,
        write_metadata=written,
        unrecognised=",".join(odd),
    )


def parse_flows(text: str) -> dict[int, list[OvsFlow]]:
    """`ovs-ofctl --no-stats dump-flows` -> cookie -> its flows (cookie 0: nobody's)."""
    out: dict[int, list[OvsFlow]] = {}
    for line in text.splitlines():
        flow = parse_flow(line)
        if flow is not None and flow.cookie:
            out.setdefault(flow.cookie, []).append(flow)
    return out


def observed_port(
    port: str,
    exists: bool,
    queue: OvsQueue | None,
    flows: Collection[OvsFlow],
    meters: Mapping[int, Meter | PacketLimit | None],
    ofport: int,
    mac: str | None = None,
    vlan: int | None = None,
) -> ObservedPort:
    """A port's QoS from its rows and flows: the meter each of its tables' flows use, the
    DSCP its ip flow sets; `flows_match` when the flows are exactly what that QoS renders
    to (with the port's number, MAC and VLAN)."""

    def meter_in(table: int, kind: type[Meter] | type[PacketLimit]) -> Any:
        ids = {f.meter_id for f in flows if f.table == table and f.meter_id is not None}
        found = meters.get(next(iter(ids))) if len(ids) == 1 else None
        return found if isinstance(found, kind) else None

    dscps = {f.set_dscp for f in flows if f.set_dscp is not None}
    qos = PortQos(
        port,
        queue,
        meter_in(OVS_TABLE_BANDWIDTH_FROM, Meter),
        next(iter(dscps)) if len(dscps) == 1 else None,
        meter_in(OVS_TABLE_PACKETS_FROM, PacketLimit),
        meter_in(OVS_TABLE_TO, PacketLimit),
    )
    try:
        rendered = ovs_port_flows(qos, ofport, mac, vlan)
    except ValueError:  # a packet meter to it, no MAC or VLAN to match on: never ours
        rendered = frozenset()
    return ObservedPort(
        qos,
        exists=exists,
        flows_match=rendered == frozenset(flows) and len(flows) == len(rendered),
    )


def _describe(exc: BaseException) -> str:
    """Some ovsdbapp exceptions fail their own str(); their class name still says it."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - describing an error must not raise another
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the real switch ----------------------------------------------------------------------


def ovsdb_api(db: str, schema: str, api_base: type, register: Callable[[Any], None]) -> Any:
    """An ovsdbapp API of `api_base` on its own connection to `db`, replicating what
    `register` registers on the schema helper. ovsdbapp keeps the first connection on the
    API class and reuses it for every later instance; a class of its own per call keeps
    each to its database."""
    try:
        helper = idlutils.get_schema_helper(db, schema)
        register(helper)
        idl = connection.OvsdbIdl(db, helper)
        conn = connection.Connection(idl=idl, timeout=OVSDB_TIMEOUT_S)
        api_class = type(f"{api_base.__name__}Own", (api_base,), {"_ovsdb_connection": None})
        return conn, api_class(conn)
    except Exception as exc:  # ovsdbapp raises bare Exceptions on connect
        raise HostError(f"connect to OVSDB {db}", _describe(exc)) from exc


def vswitch_api(db: str, tables: Sequence[str] = ()) -> Any:
    """The Open_vSwitch database's bridges, ports and the Interface columns the agent
    reads, with `tables` besides."""

    def register(helper: Any) -> None:
        for table in ("Open_vSwitch", "Bridge", "Port", *tables):
            helper.register_table(table)
        # Not Interface's statistics, status and link columns: vswitchd rewrites them
        # for every interface every few seconds, and the replica would parse them all
        # (measured: a quiet pass at 1,000 ports took twice as long with them).
        helper.register_columns("Interface", list(INTERFACE_COLUMNS))

    return ovsdb_api(db, "Open_vSwitch", impl_idl.OvsdbIdl, register)


def transact(api: Any, build: Callable[[Any], Sequence[Any]], operation: str) -> None:
    """One transaction, all or nothing; any OVSDB error is the caller's HostError."""
    try:
        with api.transaction(check_error=True) as txn:
            for command in build(api):
                txn.add(command)
    except HostError:
        raise
    except Exception as exc:  # ovsdbapp: RuntimeError, TimeoutException, ...
        raise HostError(operation, _describe(exc)) from exc


class RealSwitch:
    """One bridge of an OVS whose database is at `daemons.db`. The bridge is the agent's
    own (created by it, marked in its external_ids): a bridge of that name made by someone
    else (Neutron's br-int on a compute node) is refused, never reconfigured, so its
    datapath, protocols, fail mode and meters stay as they are. Port, QoS and Queue rows the
    agent writes carry external_ids qosplane-owner=<prefix>; only those are ever changed or
    deleted."""

    def __init__(self, daemons: OvsDaemons, bridge: str = "br-int", prefix: str = "qp-") -> None:
        self.daemons = daemons
        self.bridge = bridge
        self.tag = f"qosplane:{prefix}"
        self._cache: dict[str, tuple[int, object]] = {}
        self._conn, self.api = vswitch_api(daemons.db, ("QoS", "Queue"))
        self._ensure_bridge()

    def _bridge_row(self) -> Any | None:
        for row in self._rows("Bridge"):
            if row.name == self.bridge:
                return row
        return None

    def _ensure_bridge(self) -> None:
        """Create the bridge unless it is there; a bridge that is not the agent's is
        refused. Also what a pass does after `ovs-vsctl del-br` behind its back."""
        row = self._bridge_row()
        if row is not None:
            if row.external_ids.get("qosplane-owner") != self.tag:
                raise HostError(
                    f"use bridge {self.bridge}",
                    "it exists and is not qosplane's (give the agent a bridge of its own "
                    "with --bridge)",
                )
            return
        # The userspace datapath unless the kernel has Open vSwitch's module.
        datapath = "system" if Path("/sys/module/openvswitch").exists() else "netdev"
        self._txn(
            lambda api: [
                api.add_br(self.bridge, datapath_type=datapath),
                api.db_set(
                    "Bridge",
                    self.bridge,
                    ("protocols", ["OpenFlow10", "OpenFlow13"]),
                    ("fail_mode", "standalone"),
                    ("external_ids", {"qosplane-owner": self.tag}),
                ),
            ],
            f"add bridge {self.bridge}",
        )

    def close(self) -> None:
        self._conn.stop()

    # OVSDB ----------------------------------------------------------------------------
    def _txn(self, build: Any, operation: str) -> None:
        transact(self.api, build, operation)

    def _rows(self, table: str) -> list[Any]:
        return list(self.api.tables[table].rows.values())

    def port_names(self) -> set[str]:
        """Every port on the bridge, the agent's or not (as the OVSDB replica has it)."""
        row = self._bridge_row()
        return {p.name for p in row.ports} if row is not None else set()

    def _cached(self, key: str, compute: Callable[[], _T]) -> _T:
        """`compute()` once per state of the OVSDB replica: every column read converts the
        row's data again (measured: most of a quiet pass at 1,000 ports), and a quiet pass
        sees the same replica as the last one. The replica's change number is read first,
        so a change landing during `compute` makes the next call compute again. Callers
        only read what they get."""
        seqno = self._conn.idl.change_seqno
        hit = self._cache.get(key)
        if hit is not None and hit[0] == seqno:
            return cast(_T, hit[1])
        value = compute()
        self._cache[key] = (seqno, value)
        return value

    def _our_ports(self) -> dict[str, Any]:
        return self._cached(
            "ours",
            lambda: {
                row.name: row
                for row in self._rows("Port")
                if row.external_ids.get("qosplane-owner") == self.tag
            },
        )

    def _port_state(self) -> dict[str, tuple[OvsQueue | None, Any, int | None]]:
        """Each of the agent's ports: its queue, the uuid of its QoS row, its VLAN tag."""

        def compute() -> dict[str, tuple[OvsQueue | None, Any, int | None]]:
            out = {}
            for name, row in self._our_ports().items():
                qos_refs = row.qos
                tag = row.tag
                out[name] = (
                    self._queue_of(qos_refs),
                    qos_refs[0].uuid if qos_refs else None,
                    int(tag[0]) if tag else None,
                )
            return out

        return self._cached("port state", compute)

    def _vlan_for(self, network_id: str) -> int:
        """The network's tag if one of the agent's ports has it, else the lowest tag no
        port of any owner on the switch uses."""
        used: set[int] = set()
        for row in self._rows("Port"):
            tag = row.tag[0] if row.tag else None
            if tag is None:
                continue
            if (
                row.external_ids.get("qosplane-owner") == self.tag
                and row.external_ids.get("qosplane-network") == network_id
            ):
                return int(tag)
            used.add(int(tag))
        for tag in VLAN_TAGS:
            if tag not in used:
                return tag
        raise HostError(f"plug into {self.bridge}", "every VLAN tag is in use")

    def plug(
        self,
        port: str,
        *,
        network_id: str,
        owner: str,
        mac: str | None = None,
        port_id: str | None = None,
    ) -> None:
        self._ensure_bridge()
        ports = self._our_ports()
        existing = {row.name for row in self._rows("Port")}
        if port in existing and port not in ports:
            raise HostError(f"plug {port}", "an OVS port of that name exists and is not ours")
        vlan = self._vlan_for(network_id)
        port_ids = {
            "qosplane-owner": self.tag,
            "qosplane-instance": owner,
            "qosplane-network": network_id,
        }
        # As os-vif writes them for Nova (ovs.py _create_ovs_vif_cmd): Neutron's agent
        # and ovn-controller find the port by iface-id.
        iface_ids = {"attached-mac": mac} if mac else {}
        if port_id:
            iface_ids["iface-id"] = port_id
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
        """The port with everything the agent made for it: QoS rows, flows, meters."""
        if port not in self._our_ports():
            return
        ofport = self._ofports().get(port, -1)
        meters = ovs_meter_ids(ofport) if ofport > 0 else ()
        deletes: list[OpenFlowChange] = [FlowsDelete(ovs_port_cookie(port))]
        deletes += [MeterDelete(m) for m in meters]
        with self._openflow() as channel:
            channel.commit(deletes)
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

        def compute() -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {}
            for row in self._rows("QoS"):
                ids = row.external_ids  # each column read converts the row's datum
                if ids.get("qosplane-owner") == self.tag:
                    out.setdefault(str(ids.get("qosplane-port")), []).append(row)
            return out

        return self._cached("qos rows", compute)

    @staticmethod
    def _queue_of(qos_refs: Sequence[Any]) -> OvsQueue | None:
        """A port's queue from its `qos` column (read once by the caller)."""
        if not qos_refs:
            return None
        qos = qos_refs[0]
        queue = qos.queues.get(0)
        if qos.type != "linux-htb" or queue is None:
            return None
        other = queue.other_config
        try:
            return OvsQueue(BitsPerSecond(int(other["max-rate"])), Bits(int(other["burst"])))
        except (KeyError, ValueError):
            return None  # a hand-edited row: drift, rewritten whole

    def _ofports(self) -> dict[str, int]:
        def compute() -> dict[str, int]:
            out = {}
            for row in self._rows("Interface"):
                ofport = row.ofport[0] if row.ofport else -1
                out[row.name] = int(ofport)
            return out

        return self._cached("ofports", compute)

    def _destroy_qos_commands(self, api: Any, port: str) -> list[Any]:
        commands = []
        if port in {row.name for row in self._rows("Port")}:
            commands.append(api.db_clear("Port", port, "qos"))
        for qos in self._qos_rows().get(port, []):
            commands.append(api.db_destroy("QoS", qos.uuid))
            commands += [api.db_destroy("Queue", q.uuid) for q in qos.queues.values()]
        return commands

    # OpenFlow -------------------------------------------------------------------------
    def _openflow(self) -> OpenFlowChannel:
        if self.daemons.managed and not self.daemons.running():
            # The agent's own ovs-vswitchd (or ovsdb-server) died: start it again; the
            # database keeps the bridge and rows, and this pass rewrites the flows.
            self.daemons.ensure()
            self._wait_ofports(sorted(self._our_ports()))
        return OpenFlowChannel(self.daemons.mgmt_path(self.bridge))

    @staticmethod
    def _dump(
        channel: OpenFlowChannel,
    ) -> tuple[dict[int, list[OvsFlow]], dict[int, Meter | PacketLimit | None]]:
        """The agent's flows by cookie, and every meter (the bridge is the agent's own)."""
        flows: dict[int, list[OvsFlow]] = {}
        for flow in channel.flows(OVS_COOKIE_TAG << 48, OVS_COOKIE_MASK):
            flows.setdefault(flow.cookie, []).append(flow)
        return flows, channel.meters()

    def _down(self) -> set[str]:
        """Interfaces OVS sees administratively down: a deleted device (OVS keeps its
        number and reports it down) or one set down behind the agent's back."""
        return self._cached(
            "down",
            lambda: {
                row.name for row in self._rows("Interface") if list(row.admin_state) == ["down"]
            },
        )

    def observe(self) -> dict[str, ObservedPort]:
        """A port whose device is gone or down is missing, so the pass plugs it again
        (which recreates or raises the device) instead of repairing flows for it."""
        self._ensure_bridge()
        with self._openflow() as channel:
            flows, meters = self._dump(channel)
        ofports = self._ofports()
        macs = self._macs()
        on_bridge = self.port_names()
        down = self._down()
        # Without the pipeline's own flows no packet reaches a port's flows, whatever they
        # are: every port's flows are then wrong, and the pass writes the pipeline back.
        pipeline = frozenset(flows.get(OVS_BASE_COOKIE, ())) == ovs_base_flows()
        out = {}
        state = self._port_state()
        for name in self._our_ports():
            ofport = ofports.get(name, -1)
            queue, _, vlan = state[name]
            seen = observed_port(
                name,
                name in on_bridge and ofport > 0 and name not in down,
                queue,
                flows.get(ovs_port_cookie(name), []),
                meters,
                ofport,
                macs.get(name),
                vlan,
            )
            out[name] = seen if pipeline else replace(seen, flows_match=False)
        return out

    def _macs(self) -> dict[str, str]:
        """Interface -> the MAC the agent plugged it with (external_ids attached-mac, as
        Nova and os-vif write it), lower case as OVS prints a match on it."""

        def compute() -> dict[str, str]:
            out = {}
            for row in self._rows("Interface"):
                mac = row.external_ids.get("attached-mac")
                if mac:
                    out[row.name] = str(mac).lower()
            return out

        return self._cached("macs", compute)

    def _wait_ofports(self, ports: Sequence[str]) -> dict[str, int]:
        """vswitchd assigns an OpenFlow port number a moment after the Port row appears."""
        deadline = time.monotonic() + OFPORT_WAIT_S
        while True:
            ofports = self._ofports()
            if all(ofports.get(p, -1) > 0 for p in ports) or time.monotonic() > deadline:
                return ofports
            time.sleep(0.01)

    def apply(self, desired: Sequence[PortQos], leave: Collection[str] = ()) -> SwitchResult:
        self._ensure_bridge()
        ours = self._our_ports()
        kept = set(leave)
        failed: dict[str, str] = {}
        wanted: dict[str, PortQos] = {}
        ofports = self._wait_ofports(sorted(q.port for q in desired if q.port in ours))
        macs = self._macs()
        for q in desired:
            if q.port not in ours:
                failed[q.port] = "not plugged into the bridge"
            elif ofports.get(q.port, -1) <= 0:
                failed[q.port] = "no OpenFlow port number (its device is gone)"
            elif q.packets_to_instance is not None and (
                q.port not in macs or self._port_state()[q.port][2] is None
            ):
                failed[q.port] = (
                    "plugged without a MAC or VLAN, which its packet rate to it matches on"
                )
            else:
                wanted[q.port] = q
        kept |= set(failed)
        changes = self._apply_queues(wanted, ours, kept)
        want_flows = {OVS_BASE_COOKIE: ovs_base_flows()}
        want_meters: dict[int, Meter | PacketLimit] = {}
        state = self._port_state()
        for p in ours:
            vlan = state[p][2]
            if p in wanted:
                qos = wanted[p]
                want_flows[ovs_port_cookie(p)] = ovs_port_flows(qos, ofports[p], macs.get(p), vlan)
                want_meters |= ovs_port_meters(qos, ofports[p])
            elif p not in kept and ofports.get(p, -1) > 0:
                # No QoS of its own: still its network on what it sends (ovs_port_flows).
                want_flows[ovs_port_cookie(p)] = ovs_port_flows(PortQos(p), ofports[p], None, vlan)
        with self._openflow() as channel:
            flows, meters = self._dump(channel)
            cookies = {ovs_port_cookie(p): p for p in ours}
            openflow = openflow_changes(
                flows,
                meters,
                want_flows,
                want_meters,
                kept_cookies={c for c, p in cookies.items() if p in kept},
                kept_meters={m for p in kept for m in ovs_meter_ids(ofports.get(p, -1))},
            )
            channel.commit(openflow)
        return SwitchResult(changes + len(openflow), failed)

    def _apply_queues(
        self, wanted: Mapping[str, PortQos], ours: Mapping[str, Any], kept: Collection[str]
    ) -> int:
        rows = self._qos_rows()
        state = self._port_state()
        commands: list[tuple[str, OvsQueue | None]] = []
        for name in sorted(ours):
            if name in kept:
                continue
            qos = wanted.get(name)
            queue = qos.to_instance if qos is not None else None
            current, in_use, _ = state[name]
            stray = [r for r in rows.get(name, []) if r.uuid != in_use]
            if current == queue and not stray:
                continue
            commands.append((name, queue))
        # Rows made for ports that are gone (deleted behind the agent's back): QoS is a
        # root table, so OVSDB keeps them until someone destroys them.
        orphans = [r for port, found in rows.items() if port not in ours for r in found]
        if not commands and not orphans:
            return 0

        def build(api: Any) -> list[Any]:
            out: list[Any] = []
            for row in orphans:
                out.append(api.db_destroy("QoS", row.uuid))
                out += [api.db_destroy("Queue", q.uuid) for q in row.queues.values()]
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
        return len(commands) + len(orphans)

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

    def plug(
        self,
        port: str,
        *,
        network_id: str,
        owner: str,
        mac: str | None = None,
        port_id: str | None = None,
    ) -> None:
        self.ports[port] = owner

    def unplug(self, port: str) -> None:
        self.ports.pop(port, None)
        self.qos.pop(port, None)

    def owners(self) -> dict[str, str]:
        return dict(self.ports)

    def observe(self) -> dict[str, ObservedPort]:
        return {p: ObservedPort(self.qos.get(p, PortQos(p))) for p in self.ports}

    def apply(self, desired: Sequence[PortQos], leave: Collection[str] = ()) -> SwitchResult:
        failed = {
            q.port: "not plugged into the bridge" for q in desired if q.port not in self.ports
        }
        kept = set(leave) | set(failed)
        before = dict(self.qos)
        after = {p: q for p, q in before.items() if p in kept}
        after |= {q.port: q for q in desired if q.port not in kept and q != PortQos(q.port)}
        self.qos = after
        changed = sum(1 for p in set(before) | set(after) if before.get(p) != after.get(p))
        self.changes += changed
        return SwitchResult(changed, failed)
