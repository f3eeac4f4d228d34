"""OVN: ports wired into br-int as logical switch ports, and their QoS as the Northbound
`QoS` rows ML2/OVN writes, which ovn-controller turns into OpenFlow meters and marks.

- OVN's daemons (NB and SB ovsdb-servers, ovn-northd, ovn-controller) with every file
  under the state directory, over the agent's own Open vSwitch (host/ovs.py's OvsDaemons),
  as host-capabilities.md §12 found them working on the userspace datapath. They outlive
  the agent, as the data plane must.
- Open vSwitch through ovsdbapp: the agent's br-int (fail-mode secure: ovn-controller owns
  every flow on it, so the agent writes none), each port with `iface-id` = its logical
  switch port, as os-vif plugs a Nova tap for ML2/OVN.
- The Northbound database through ovsdbapp: one Logical_Switch per network
  (`neutron-<network id>`), one Logical_Switch_Port per port (the Neutron port id, or the
  probe's device name), and each port's QoS rows rendered by
  compiler/enforcement/backends/ovn.py, written in one transaction per pass, a changed row
  updated in place (`qos-add` refuses a second row of the same direction, priority and
  match). A pass that changed rows waits until ovn-controller has them (`--wait=hv`).
- The meters ovn-controller made are read back from br-int over its management socket
  (host/openflow.py) for `explain`; they are reported, not repaired: they are
  ovn-controller's.

Every row the agent writes carries external_ids qosplane-owner=<tag>; only those are ever
changed or deleted. A host's own OVN (a Neutron deployment's NB) is never written to.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ovsdbapp.schema.ovn_northbound import impl_idl as nb_idl

from qosplane.compiler.enforcement.program import ovn_row_text, ovn_rows, port_qos_of_rows
from qosplane.host.errors import HostError
from qosplane.host.openflow import OpenFlowChannel
from qosplane.host.ovs import (
    OFPORT_WAIT_S,
    OvsDaemons,
    PortPlugs,
    SwitchResult,
    ovsdb_api,
    transact,
    vswitch_api,
)
from qosplane.host.process import in_netns, run
from qosplane.model.host_state import Meter, ObservedOvnPort, OvnPortQos
from qosplane.model.plan import OvnQosRow, ovn_logical_switch

OVN_SCHEMAS = Path("/usr/share/ovn")
WAIT_HV_S = 10  # ovn-nbctl --timeout for ovn-controller to catch up
OWNER_KEY = "qosplane-owner"
NEUTRON_PORT_KEY = "neutron:port_id"  # ML2/OVN's external_ids key on its QoS rows
DAEMON_STOP_S = 5.0


class OvnSwitch(PortPlugs, Protocol):
    def observe(self) -> dict[str, ObservedOvnPort]:
        """Every plugged port's QoS as its Northbound rows show it, with the meters
        ovn-controller made of them."""

    def apply(self, desired: Sequence[OvnPortQos], leave: Collection[str] = ()) -> SwitchResult:
        """Bring every plugged port's rows to `desired` (a port not listed and not in
        `leave`: none) and delete the rows of no plugged port; ports in `leave` are not
        touched, and a port that is not plugged fails alone."""

    def strays(self) -> list[str]:
        """What the last observe() found that belongs to no plugged port, as text."""


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


@dataclass
class OvnDaemons:
    """OVN's four daemons with every file under `state_dir`, over `ovs` (the agent's own
    Open vSwitch); ovn-controller runs in the namespace of ovs-vswitchd."""

    state_dir: Path
    ovs: OvsDaemons
    system_id: str = "qosplane"

    @property
    def nb(self) -> str:
        return f"unix:{self.state_dir / 'nb.sock'}"

    @property
    def sb(self) -> str:
        return f"unix:{self.state_dir / 'sb.sock'}"

    def _alive(self, name: str) -> bool:
        return _pid_alive(self.state_dir / f"{name}.pid") is not None

    def running(self) -> bool:
        names = ("ovn-nb", "ovn-sb", "ovn-northd", "ovn-controller")
        return self.ovs.running() and all(self._alive(n) for n in names)

    def _common(self, name: str) -> list[str]:
        d = self.state_dir
        return [
            f"--pidfile={d / f'{name}.pid'}",
            f"--log-file={d / f'{name}.log'}",
            "-vconsole:off",
            "--detach",
            "--no-chdir",
        ]

    def ensure(self, bridge: str, owner_tag: str) -> None:
        """Start whichever daemon is not running, with `bridge` (the agent's, made here
        when missing; someone else's is refused) as ovn-controller's integration bridge.
        A restarted agent reuses them all."""
        self.ovs.ensure()
        d = self.state_dir
        d.mkdir(parents=True, exist_ok=True)
        for name, schema in (("ovn-nb", "ovn-nb"), ("ovn-sb", "ovn-sb")):
            if self._alive(name):
                continue
            db = d / f"{name.removeprefix('ovn-')}.db"
            if not db.exists():
                run(["ovsdb-tool", "create", str(db), str(OVN_SCHEMAS / f"{schema}.ovsschema")])
            sock = d / f"{name.removeprefix('ovn-')}.sock"
            run(
                [
                    "ovsdb-server",
                    str(db),
                    f"--remote=punix:{sock}",
                    f"--unixctl={d / f'{name}.ctl'}",
                    *self._common(name),
                ]
            )
        run(["ovn-nbctl", f"--db={self.nb}", "--no-wait", "init"])
        if not self._alive("ovn-northd"):
            run(
                [
                    "ovn-northd",
                    f"--ovnnb-db={self.nb}",
                    f"--ovnsb-db={self.sb}",
                    f"--unixctl={d / 'ovn-northd.ctl'}",
                    *self._common("ovn-northd"),
                ]
            )
        self._ensure_bridge(bridge, owner_tag)
        if not self._alive("ovn-controller"):
            # 23.03 takes no --unixctl: its socket goes to OVN_RUNDIR (§12).
            run(
                in_netns(
                    self.ovs.netns,
                    [
                        "env",
                        f"OVN_RUNDIR={d}",
                        # where it finds br-int's management socket
                        f"OVS_RUNDIR={self.ovs.state_dir}",
                        "ovn-controller",
                        self.ovs.db,
                        *self._common("ovn-controller"),
                    ],
                )
            )

    def _ensure_bridge(self, bridge: str, owner_tag: str) -> None:
        vsctl = ["ovs-vsctl", f"--db={self.ovs.db}", "--no-wait"]
        bridges = run([*vsctl, "list-br"]).split()
        if bridge in bridges:
            owner = run([*vsctl, "get", "Bridge", bridge, "external_ids"])
            if f'{OWNER_KEY}="{owner_tag}"' not in owner:
                raise HostError(
                    f"use bridge {bridge}",
                    "it exists and is not qosplane's (give the agent a bridge of its own "
                    "with --bridge)",
                )
        else:
            datapath = "system" if Path("/sys/module/openvswitch").exists() else "netdev"
            run(
                [
                    *vsctl,
                    "add-br",
                    bridge,
                    "--",
                    "set",
                    "Bridge",
                    bridge,
                    f"datapath_type={datapath}",
                    "fail_mode=secure",
                    "other_config:disable-in-band=true",
                    f"external_ids:{OWNER_KEY}={owner_tag}",
                ]
            )
        datapath = run([*vsctl, "get", "Bridge", bridge, "datapath_type"]).strip()
        run(
            [
                *vsctl,
                "set",
                "Open_vSwitch",
                ".",
                f"external_ids:system-id={self.system_id}",
                f"external_ids:ovn-remote={self.sb}",
                "external_ids:ovn-encap-type=geneve",
                "external_ids:ovn-encap-ip=127.0.0.1",
                f"external_ids:ovn-bridge={bridge}",
                f"external_ids:ovn-bridge-datapath-type={datapath}",
            ]
        )

    def stop(self) -> None:
        """Stop OVN's daemons, then Open vSwitch's (tests, uninstall); files stay."""
        for name in ("ovn-controller", "ovn-northd", "ovn-sb", "ovn-nb"):
            pid = _pid_alive(self.state_dir / f"{name}.pid")
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + DAEMON_STOP_S
            while _pid_alive(self.state_dir / f"{name}.pid") == pid:
                if time.monotonic() > deadline:
                    # Hung: its state directory may be removed next, so it goes now.
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
        self.ovs.stop()


def _nb_api(db: str) -> Any:
    def register(helper: Any) -> None:
        for table in ("NB_Global", "Logical_Switch", "Logical_Switch_Port", "QoS"):
            helper.register_table(table)

    return ovsdb_api(db, "OVN_Northbound", nb_idl.OvnNbApiIdlImpl, register)


_MATCH_PORT = re.compile(r'^(?:inport|outport) == "([^"]+)"$')


def _row_of(switch: str, row: Any) -> OvnQosRow | None:
    """An NB QoS row in the model's terms, its port from ML2/OVN's external_ids or else
    from a match of the one shape ML2/OVN writes; None for a row of no port."""
    value = _values_of(switch, row)
    return value if value.port_id else None


def _values_of(switch: str, row: Any) -> OvnQosRow:
    """Any NB QoS row as the model's, its port '' when it names none."""
    found = _MATCH_PORT.match(str(row.match))
    port_id = row.external_ids.get(NEUTRON_PORT_KEY) or (found.group(1) if found else "")
    bandwidth, action = dict(row.bandwidth), dict(row.action)
    return OvnQosRow(
        switch=switch,
        direction=str(row.direction),
        priority=int(row.priority),
        match=str(row.match),
        port_id=str(port_id),
        rate_kbit_per_s=int(bandwidth["rate"]) if "rate" in bandwidth else None,
        burst_kbit=int(bandwidth["burst"]) if "burst" in bandwidth else None,
        dscp=int(action["dscp"]) if "dscp" in action else None,
    )


def _key(row: OvnQosRow) -> tuple[str, str, int, str]:
    """What the NB keeps one row of (ovn-nbctl qos-add refuses a second on a switch)."""
    return (row.switch, row.direction, row.priority, row.match)


def _bandwidth(row: OvnQosRow) -> dict[str, int]:
    return {
        k: v for k, v in (("rate", row.rate_kbit_per_s), ("burst", row.burst_kbit)) if v is not None
    }


@dataclass(frozen=True, slots=True)
class _NbRow:
    switch: str
    value: OvnQosRow | None  # None: a row of no port (not one ML2/OVN writes)
    row: Any


def _network(switch: str) -> str:
    return switch.removeprefix("neutron-")


class RealOvnSwitch:
    """br-int of the agent's OVN: the ports it plugged, their logical switch ports and
    QoS rows. Ports, switches and logical ports it writes carry its tag, and every row on
    its switches is its own to manage; a switch or logical port of that name that is not
    the agent's is refused, never changed."""

    def __init__(self, daemons: OvnDaemons, bridge: str = "br-int", prefix: str = "qp-") -> None:
        self.daemons = daemons
        self.bridge = bridge
        self.tag = f"qosplane:{prefix}"
        daemons.ensure(bridge, self.tag)
        self._ovs_conn, self.ovs = vswitch_api(daemons.ovs.db)
        self._nb_conn, self.nb = _nb_api(daemons.nb)
        self._strays: list[str] = []
        # Logical ports (with rows or not) that were not plugged at the last observe, and
        # those seen so twice running: the ones apply() may delete.
        self._unplugged_before: set[str] = set()
        self._confirmed: set[str] = set()
        self._plugged: set[str] = set()  # ports plugged since the last observe

    def close(self) -> None:
        self._ovs_conn.stop()
        self._nb_conn.stop()

    # -- what is there ---------------------------------------------------------------
    def _our_ports(self) -> dict[str, Any]:
        return {
            row.name: row
            for row in self.ovs.tables["Port"].rows.values()
            if row.external_ids.get(OWNER_KEY) == self.tag
        }

    def _interfaces(self) -> dict[str, Any]:
        """The agent's ports' Interface rows."""
        ours = self._our_ports()
        return {r.name: r for r in self.ovs.tables["Interface"].rows.values() if r.name in ours}

    def _iface_ids(self) -> dict[str, str]:
        """OVS port -> its logical switch port, for the agent's ports."""
        return {
            name: str(row.external_ids.get("iface-id", ""))
            for name, row in self._interfaces().items()
        }

    def _switches(self) -> dict[str, Any]:
        return {
            row.name: row
            for row in self.nb.tables["Logical_Switch"].rows.values()
            if row.external_ids.get(OWNER_KEY) == self.tag
        }

    def _lsp_switch(self) -> dict[str, str]:
        """Logical switch port -> its switch, in the agent's switches."""
        return {lsp.name: name for name, ls in self._switches().items() for lsp in ls.ports}

    def _rows(self) -> dict[str, list[_NbRow]]:
        """Logical switch port -> the QoS rows for it on the agent's switches (every row
        there is the agent's to manage); rows of no port are under ''."""
        out: dict[str, list[_NbRow]] = {}
        for name, ls in self._switches().items():
            for row in ls.qos_rules:
                value = _row_of(name, row)
                out.setdefault(value.port_id if value else "", []).append(_NbRow(name, value, row))
        return out

    def _live(self, ports: Collection[str]) -> set[str]:
        """The ports whose device OVS has: an OpenFlow number, not administratively down.
        vswitchd numbers a new port, or one whose device came back, a moment after it is
        plugged: the ports plugged since the last look are waited for."""
        deadline = time.monotonic() + OFPORT_WAIT_S
        while True:
            rows = self._interfaces()
            live = {
                p
                for p in ports
                if p in rows
                and list(rows[p].ofport)[:1] not in ([], [-1])
                and list(rows[p].admin_state) != ["down"]
            }
            unnumbered = {p for p in ports if p in rows and not list(rows[p].ofport)}
            waiting = (self._plugged & set(ports)) - live
            if not (unnumbered | waiting) or time.monotonic() > deadline:
                self._plugged = set()
                return live
            time.sleep(0.01)

    # -- plugging --------------------------------------------------------------------
    def plug(
        self,
        port: str,
        *,
        network_id: str,
        owner: str,
        mac: str | None = None,
        port_id: str | None = None,
    ) -> None:
        existing = {row.name for row in self.ovs.tables["Port"].rows.values()}
        if port in existing and port not in self._our_ports():
            raise HostError(f"plug {port}", "an OVS port of that name exists and is not ours")
        lsp = port_id or port
        switch = ovn_logical_switch(network_id)
        for table, name in (("Logical_Switch", switch), ("Logical_Switch_Port", lsp)):
            row = next((r for r in self.nb.tables[table].rows.values() if r.name == name), None)
            if row is not None and row.external_ids.get(OWNER_KEY) != self.tag:
                raise HostError(f"plug {port}", f"{table} {name} exists and is not qosplane's")
        # The OVS port first: a logical port is then never without the port naming it,
        # which is how a half-made one is told from one being plugged.
        port_ids = {OWNER_KEY: self.tag, "qosplane-instance": owner, "qosplane-network": network_id}
        iface_ids = {"iface-id": lsp, **({"attached-mac": mac} if mac else {})}
        transact(
            self.ovs,
            lambda api: [
                api.add_port(self.bridge, port, may_exist=True),
                api.db_set("Port", port, ("external_ids", port_ids)),
                api.db_set("Interface", port, ("external_ids", iface_ids)),
            ],
            f"plug {port} into {self.bridge}",
        )
        self._plugged.add(port)
        ids = {OWNER_KEY: self.tag}
        lsp_ids = {**ids, "qosplane-instance": owner, "qosplane-port": port}
        addresses = [mac] if mac else ["unknown"]
        transact(
            self.nb,
            lambda api: [
                api.ls_add(switch, may_exist=True, external_ids=ids),
                api.lsp_add(switch, lsp, may_exist=True, addresses=addresses, external_ids=lsp_ids),
                # may_exist returns a row that is there as it is: what a re-plug changes
                # (the MAC, the owner) is set on it.
                api.db_set("Logical_Switch_Port", lsp, ("addresses", addresses)),
                api.db_set("Logical_Switch_Port", lsp, ("external_ids", lsp_ids)),
            ],
            f"add logical port {lsp} to {switch}",
        )

    def _lsp_removal(
        self, api: Any, lsps: Collection[str], rows: Mapping[str, list[_NbRow]]
    ) -> list[Any]:
        """NB commands deleting `lsps`, their rows, and the agent's switches they empty."""
        switch_of = self._lsp_switch()
        out = [
            api.db_remove("Logical_Switch", r.switch, "qos_rules", r.row.uuid)
            for lsp in sorted(lsps)
            for r in rows.get(lsp, [])
        ]
        out += [
            api.lsp_del(lsp, switch_of[lsp], if_exists=True) for lsp in lsps if lsp in switch_of
        ]
        out += [
            api.ls_del(name, if_exists=True)
            for name, ls in self._switches().items()
            if {p.name for p in ls.ports} <= set(lsps)
        ]
        return out

    def unplug(self, port: str) -> None:
        """The port, its logical switch port and QoS rows, and its switch once empty."""
        if port not in self._our_ports():
            return
        lsp = self._iface_ids().get(port, "") or port
        if lsp in self._lsp_switch():
            rows = self._rows()
            transact(
                self.nb,
                lambda api: self._lsp_removal(api, [lsp], rows),
                f"remove logical port {lsp}",
            )
        transact(
            self.ovs,
            lambda api: [api.del_port(port, bridge=self.bridge, if_exists=True)],
            f"unplug {port}",
        )

    def owners(self) -> dict[str, str]:
        return {
            name: str(row.external_ids.get("qosplane-instance", ""))
            for name, row in self._our_ports().items()
        }

    # -- QoS -------------------------------------------------------------------------
    def _meters(self) -> list[Meter]:
        """The kbps meters on br-int (ovn-controller's, one per distinct rate and burst)."""
        if not self.daemons.ovs.mgmt_path(self.bridge).exists():
            return []
        with OpenFlowChannel(self.daemons.ovs.mgmt_path(self.bridge)) as channel:
            return [m for m in channel.meters(burstless=True).values() if isinstance(m, Meter)]

    def _orphans(self) -> set[str]:
        """The agent's logical ports no plugged OVS port names (someone deleted the OVS
        port, rewrote its iface-id, or the OVS database was lost). apply() deletes those
        seen so in this observation and the one before: the two databases' replicas hear
        of another process's plug at different moments."""
        named = set(self._iface_ids().values())
        return {
            lsp.name
            for ls in self._switches().values()
            for lsp in ls.ports
            if lsp.external_ids.get(OWNER_KEY) == self.tag and lsp.name not in named
        }

    def strays(self) -> list[str]:
        """What the last observe() found on the agent's switches that belongs to no
        plugged port: rows (a row added by hand, say) and logical ports."""
        return list(self._strays)

    def observe(self) -> dict[str, ObservedOvnPort]:
        """A port whose device is gone or down, or whose logical port is, is missing, so
        the pass plugs it again before repairing its rows."""
        if not self.daemons.running():
            self.daemons.ensure(self.bridge, self.tag)
        lsps, switches, rows = self._iface_ids(), self._lsp_switch(), self._rows()
        live = self._live(list(lsps))
        meters = self._meters()

        def made(meter: Meter | None) -> Meter | None:
            if meter is None:
                return None
            # Without a burst ovn-controller's meter has one of its own (§12): by rate.
            same = [m for m in meters if m.rate_kilobits_per_s == meter.rate_kilobits_per_s]
            exact = [m for m in same if m.burst_kilobits == meter.burst_kilobits]
            return next(iter(exact or same), None)

        out: dict[str, ObservedOvnPort] = {}
        for port, lsp in lsps.items():
            have = rows.get(lsp, [])
            values = [r.value for r in have if r.value is not None]
            qos = port_qos_of_rows(port, values)
            switch = switches.get(lsp)
            rendered = set(ovn_rows(qos, lsp, _network(switch))) if switch else set()
            out[port] = ObservedOvnPort(
                qos,
                exists=switch is not None and port in live,
                rows_match=rendered == set(values) and len(values) == len(have),
                meters=(made(qos.to_instance), made(qos.from_instance)),
                rows=tuple(sorted(values, key=lambda r: r.direction)),
            )
        plugged = set(lsps.values())
        unplugged = {lsp for lsp in rows if lsp not in plugged}
        orphans = self._orphans()
        # A row of no port at all is a stray at once; one of a port not plugged, and a
        # logical port of no OVS port, when the observation before saw them so too.
        self._confirmed = (orphans | (unplugged - {""})) & self._unplugged_before
        self._unplugged_before = orphans | unplugged
        self._strays = [
            f"{r.switch}: {ovn_row_text(_values_of(r.switch, r.row))}"
            for lsp, have in sorted(rows.items())
            if lsp == "" or lsp in self._confirmed
            for r in have
        ] + [f"logical port {lsp}" for lsp in sorted(orphans & self._confirmed)]
        return out

    def apply(self, desired: Sequence[OvnPortQos], leave: Collection[str] = ()) -> SwitchResult:
        """Every plugged port's rows to `desired` (a port not listed and not in `leave`:
        none); the rows, logical ports and empty switches of no plugged port deleted; all
        in one NB transaction."""
        lsps, switches, rows = self._iface_ids(), self._lsp_switch(), self._rows()
        by_port = {q.port: q for q in desired}
        failed = {
            q.port: "not plugged into the bridge"
            for q in desired
            if q.port not in lsps or lsps[q.port] not in switches
        }
        kept_ports = set(leave) | set(failed)
        kept_lsps = {lsps[p] for p in kept_ports if p in lsps} | {
            lsp.name
            for ls in self._switches().values()
            for lsp in ls.ports
            if lsp.external_ids.get("qosplane-port") in kept_ports
        }
        wanted: dict[str, set[OvnQosRow]] = {}
        for port, lsp in lsps.items():
            if port in leave or port in failed or lsp not in switches:
                continue
            qos = by_port.get(port, OvnPortQos(port))
            wanted[lsp] = set(ovn_rows(qos, lsp, _network(switches[lsp])))
        # A row of the wrong values but a wanted (switch, direction, priority, match) is
        # updated in place: the NB keeps one row per key (ovn-nbctl qos-add refuses a
        # second).
        updates: list[tuple[Any, OvnQosRow]] = []
        removes: list[_NbRow] = []
        adds: list[OvnQosRow] = []
        for lsp, want in wanted.items():
            have = rows.get(lsp, [])
            missing = {_key(r): r for r in want - {r.value for r in have}}
            for nb in have:
                if nb.value in want:
                    continue
                target = missing.pop(_key(nb.value), None) if nb.value is not None else None
                if target is not None:
                    updates.append((nb.row, target))
                else:
                    removes.append(nb)
            adds += sorted(missing.values(), key=lambda r: r.direction)
        for lsp, have in rows.items():
            if lsp not in wanted and lsp not in kept_lsps and (lsp == "" or lsp in self._confirmed):
                removes += have  # rows of no plugged port, or of no port at all
        orphans = (self._orphans() & self._confirmed) - kept_lsps
        if not removes and not adds and not updates and not orphans:
            return SwitchResult(0, failed)
        ids = {OWNER_KEY: self.tag}

        def build(api: Any) -> list[Any]:
            done = {nb.row.uuid for lsp in orphans for nb in rows.get(lsp, [])}
            out = [
                api.db_remove("Logical_Switch", nb.switch, "qos_rules", nb.row.uuid)
                for nb in removes
                if nb.row.uuid not in done
            ]
            for row, r in updates:
                # ovsdbapp's db_set merges maps into what is there: clear them first.
                out += [
                    api.db_clear("QoS", row.uuid, "bandwidth"),
                    api.db_clear("QoS", row.uuid, "action"),
                ]
                out.append(
                    api.db_set(
                        "QoS",
                        row.uuid,
                        ("bandwidth", _bandwidth(r)),
                        ("action", {} if r.dscp is None else {"dscp": r.dscp}),
                        ("external_ids", {**ids, NEUTRON_PORT_KEY: r.port_id}),
                    )
                )
            for r in adds:
                out.append(
                    api.qos_add(
                        r.switch,
                        r.direction,
                        r.priority,
                        r.match,
                        rate=r.rate_kbit_per_s,
                        burst=r.burst_kbit,
                        dscp=r.dscp,
                        external_ids={**ids, NEUTRON_PORT_KEY: r.port_id},
                    )
                )
            return out + (self._lsp_removal(api, orphans, rows) if orphans else [])

        transact(self.nb, build, f"QoS rows in {self.daemons.nb}")
        self.wait_hypervisor()
        return SwitchResult(len(removes) + len(adds) + len(updates) + len(orphans), failed)

    def wait_hypervisor(self) -> None:
        """Until ovn-controller has what the NB holds (ovn-nbctl --wait=hv)."""
        run(
            [
                "ovn-nbctl",
                f"--db={self.daemons.nb}",
                f"--timeout={WAIT_HV_S}",
                "--wait=hv",
                "sync",
            ]
        )

    def remove_everything(self) -> None:
        """Tests and uninstall: every port, switch and row this agent made, strays
        included, whether or not an observation confirmed them."""
        for port in sorted(self._our_ports()):
            self.unplug(port)
        rows = self._rows()
        lsps = {lsp.name for ls in self._switches().values() for lsp in ls.ports}
        if self._switches():
            transact(
                self.nb,
                lambda api: self._lsp_removal(api, lsps, rows),
                f"remove qosplane's switches from {self.daemons.nb}",
            )


def nb_qos_texts(db: str) -> tuple[str, str]:
    """What `inspect` reads of a Northbound database, read-only: its switches with their
    QoS rules, and every QoS row (verify/inspect.py ovn_nb_qos_rows parses them)."""
    nbctl = ["ovn-nbctl", f"--db={db}", "--no-leader-only", "--format=json"]
    switches = run([*nbctl, "--columns=name,qos_rules", "list", "Logical_Switch"])
    columns = "_uuid,direction,priority,match,bandwidth,action,external_ids"
    return switches, run([*nbctl, f"--columns={columns}", "list", "QoS"])


# --- the fake -----------------------------------------------------------------------------


@dataclass
class FakeOvnSwitch:
    """In memory, with the real driver's semantics: rows only for plugged ports, ports
    keep their owner, a removed row shows up in observe()."""

    bridge: str = "br-int"
    ports: dict[str, str] = field(default_factory=dict)  # port -> owner
    qos: dict[str, OvnPortQos] = field(default_factory=dict)
    changes: int = 0
    extra: list[str] = field(default_factory=list)  # rows of no port, as strays() says

    def strays(self) -> list[str]:
        return list(self.extra)

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

    def observe(self) -> dict[str, ObservedOvnPort]:
        out = {}
        for p in self.ports:
            q = self.qos.get(p, OvnPortQos(p))
            rows = ovn_rows(q, p, "fake")
            out[p] = ObservedOvnPort(q, meters=(q.to_instance, q.from_instance), rows=rows)
        return out

    def apply(self, desired: Sequence[OvnPortQos], leave: Collection[str] = ()) -> SwitchResult:
        failed = {
            q.port: "not plugged into the bridge" for q in desired if q.port not in self.ports
        }
        kept = set(leave) | set(failed)
        before = dict(self.qos)
        after = {p: q for p, q in before.items() if p in kept}
        after |= {q.port: q for q in desired if q.port not in kept and q != OvnPortQos(q.port)}
        self.qos = after
        changed = sum(1 for p in set(before) | set(after) if before.get(p) != after.get(p))
        changed += len(self.extra)
        self.extra = []
        self.changes += changed
        return SwitchResult(changed, failed)
