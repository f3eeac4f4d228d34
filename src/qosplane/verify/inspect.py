"""`qosplane inspect`: what a compute host really holds for one instance against what its
plan declares, limit by limit: holds, differs (declared X, host Y) or missing.

The layers compared: libvirt's, the plan's domain XML (what Nova would define) against
the running domain as libvirt reports it, `virsh dumpxml` plus the live values of
`blkdeviotune`, `domiftune` and `schedinfo` (the XML of a running domain can lag a live
change; the API's values are what QEMU and the cgroup hold). And the kernel's under it:
tc on each tap, where libvirt puts a `<bandwidth>` (an htb class for inbound, an ingress
police for outbound), because libvirt keeps reporting a `<bandwidth>` whose tc something
else removed; the domain's cgroup files, which libvirt writes its `<cputune>` into; Open
vSwitch's Interface policing columns; and OVN's Northbound QoS rows for its ports. A
limit the plan declares that the host lacks is the seed's surprise: a
Cinder spec changed after attach that never reached QEMU, or the police on an OVS port that
Neutron's OVS agent deleted (libvirt still says it is there). Pure: text and numbers in,
rows out.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from qosplane.compiler.enforcement.backends.libvirt_domain import IOTUNE_KEYS
from qosplane.compiler.enforcement.program import parse_htb_class
from qosplane.model.plan import OvnQosRow
from qosplane.model.units import (
    BitsPerSecond,
    bits_per_s_to_kilobytes_per_s,
    bytes_to_kibibytes,
    parse_tc_rate_bits,
    parse_tc_size_bytes,
)

# <iotune> children as virDomainGetBlockIoTune names them (the enforcement backend's list),
# and <bandwidth> attributes as virDomainGetInterfaceParameters does (inbound.average,
# KiB/s; burst in KiB).
IOTUNE_ELEMENTS = (*IOTUNE_KEYS, "size_iops_sec")  # Nova's tune_opts, every one
BANDWIDTH_ATTRIBUTES = ("average", "peak", "burst")
SCHEDULER = {"shares": "cpu_shares", "quota": "vcpu_quota", "period": "vcpu_period"}


@dataclass(frozen=True, slots=True)
class HostDomain:
    """One domain as a host holds it. `iotune`, `interfaces` and `scheduler` are the live
    API's values where they were read; `from_xml` derives them from a dumpxml alone."""

    xml: str
    iotune: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # by disk target
    interfaces: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # by tap
    scheduler: Mapping[str, int] = field(default_factory=dict)
    # What tc holds on each tap, in <bandwidth>'s names and units (tap_bandwidth); None:
    # tc was not read (a captured dumpxml alone).
    tc: Mapping[str, Mapping[str, int]] | None = None
    # The domain's cgroup files, in libvirt's scheduler names (cpu_shares, vcpu_quota,
    # vcpu_period); None: not read.
    cgroup: Mapping[str, int] | None = None
    # Open vSwitch's Interface policing columns by tap (ovs_interface_policing); None: no
    # OVS was read.
    ovs: Mapping[str, Mapping[str, int]] | None = None
    # The OVN Northbound's QoS rows (ovn_nb_qos_rows); None: no OVN was read.
    ovn: tuple[OvnQosRow, ...] | None = None
    not_read: tuple[str, ...] = ()  # layers that could not be read, each with why

    @classmethod
    def from_xml(cls, xml: str) -> HostDomain:
        """A captured `virsh dumpxml` (the seed's, say) with nothing read live."""
        declared = declared_limits(xml)
        return cls(xml, declared.iotune, declared.interfaces, declared.scheduler)


# `tc filter show dev TAP parent ffff:`: the police libvirt (or Neutron's OVS agent, through
# ingress_policing_rate) puts on what the guest sends.
_POLICE = re.compile(r"police \S+ rate (\S+) burst (\S+)")


def tap_bandwidth(classes: str, ingress_filters: str) -> dict[str, int]:
    """tc's text for one tap (`tc class show dev TAP`, `tc filter show dev TAP parent
    ffff:`) as libvirt's <bandwidth> names it (libvirt's virNetDevBandwidthSet: inbound is
    htb class 1:1 at the root, rate average, ceil peak; outbound a police on ingress): rates
    in KB/s (libvirt's kilobytes, tc's 1000-based kbps), bursts in KiB (tc's 1024-based kb).
    Only what tc holds is listed."""
    out: dict[str, int] = {}
    shaper = parse_htb_class(classes)
    if shaper is not None:
        out["inbound.average"] = bits_per_s_to_kilobytes_per_s(shaper.rate_bits_per_s)
        out["inbound.peak"] = bits_per_s_to_kilobytes_per_s(shaper.ceil_bits_per_s)
        out["inbound.burst"] = bytes_to_kibibytes(shaper.burst_bytes)
    police = _POLICE.search(ingress_filters)
    if police is not None:
        rate = BitsPerSecond(parse_tc_rate_bits(police.group(1)))
        out["outbound.average"] = bits_per_s_to_kilobytes_per_s(rate)
        out["outbound.burst"] = bytes_to_kibibytes(parse_tc_size_bytes(police.group(2)))
    return out


POLICING_COLUMNS = ("ingress_policing_rate", "ingress_policing_burst")  # kbit/s, kbit


def declared_ovs_policing(ovs_argv: Sequence[Sequence[str]]) -> dict[str, dict[str, int]]:
    """The Interface policing a plan's `ovs` commands leave on each tap (the last write
    wins: Neutron's OVS agent writing 0 over libvirt's police is declared 0)."""
    out: dict[str, dict[str, int]] = {}
    for argv in ovs_argv:
        if not argv or argv[0] != "ovs-vsctl":
            continue
        command: list[str] = []
        for word in [*argv[1:], "--"]:
            if word != "--":
                if not word.startswith("--"):
                    command.append(word)
                continue
            if command[:2] == ["set", "Interface"] and len(command) > 2:
                for pair in command[3:]:
                    key, _, value = pair.partition("=")
                    if key in POLICING_COLUMNS:
                        out.setdefault(command[2], {})[key] = int(value)
            command = []
    return out


def ovs_interface_policing(text: str) -> dict[str, dict[str, int]]:
    """`ovs-vsctl list Interface` text (the seed's capture, or `--columns=name,
    ingress_policing_rate,ingress_policing_burst`) -> tap -> its policing columns."""
    out: dict[str, dict[str, int]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        name = fields.get("name", "").strip('"')
        if name:
            out[name] = {c: int(fields[c]) for c in POLICING_COLUMNS if fields.get(c, "").isdigit()}
    return out


def _ovsdb_set(value: object) -> list[object]:
    """An OVSDB JSON set (`["set", [...]]`, or one atom alone) as a list of atoms."""
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value]


def _ovsdb_map(value: object) -> dict[str, object]:
    if not isinstance(value, list) or value[0] != "map":
        raise ValueError(f"not an OVSDB map: {value!r}")
    return {str(k): v for k, v in value[1]}


def ovn_nb_qos_rows(switches_json: str, qos_json: str) -> list[OvnQosRow]:
    """`ovn-nbctl --format=json --columns=name,qos_rules list Logical_Switch` and
    `--columns=_uuid,direction,priority,match,bandwidth,action,external_ids list QoS`
    as the model's rows, each on its switch; a row on no switch, or of no port (no
    neutron:port_id and no match on one port), is left out."""
    switch_of: dict[str, str] = {}
    switches = json.loads(switches_json)
    for values in switches["data"]:
        row = dict(zip(switches["headings"], values, strict=True))
        for ref in _ovsdb_set(row["qos_rules"]):
            assert isinstance(ref, list)
            switch_of[str(ref[1])] = str(row["name"])
    out = []
    table = json.loads(qos_json)
    for values in table["data"]:
        row = dict(zip(table["headings"], values, strict=True))
        switch = switch_of.get(str(row["_uuid"][1]))
        bandwidth, action = _ovsdb_map(row["bandwidth"]), _ovsdb_map(row["action"])
        found = _MATCH_PORT.match(str(row["match"]))
        port = _ovsdb_map(row["external_ids"]).get("neutron:port_id") or (
            found.group(1) if found else None
        )
        if switch is None or port is None:
            continue
        out.append(
            OvnQosRow(
                switch=switch,
                direction=str(row["direction"]),
                priority=int(row["priority"]),
                match=str(row["match"]),
                port_id=str(port),
                rate_kbit_per_s=int(str(bandwidth["rate"])) if "rate" in bandwidth else None,
                burst_kbit=int(str(bandwidth["burst"])) if "burst" in bandwidth else None,
                dscp=int(str(action["dscp"])) if "dscp" in action else None,
            )
        )
    return out


_MATCH_PORT = re.compile(r'^(?:inport|outport) == "([^"]+)"$')


def _row_values(row: OvnQosRow) -> dict[str, int]:
    """A row's values by their NB names: kbit/s, kbit and the DSCP value."""
    values = {"rate": row.rate_kbit_per_s, "burst": row.burst_kbit, "dscp": row.dscp}
    return {k: v for k, v in values.items() if v is not None}


def _compare_ovn(declared: Sequence[OvnQosRow], held: Sequence[OvnQosRow]) -> list[Row]:
    """Each row ML2/OVN writes for the plan against the NB row of the same switch,
    direction and match: its rate, burst and mark."""
    by_key = {(r.switch, r.direction, r.match): r for r in held}
    rows: list[Row] = []
    for want in declared:
        have = by_key.get((want.switch, want.direction, want.match))
        device = f"{want.direction} {want.port_id[:13]}"
        rows += _compare(
            "OVN NB QoS", device, _row_values(want), None if have is None else _row_values(have)
        )
    return rows


@dataclass(frozen=True, slots=True)
class Declared:
    iotune: dict[str, dict[str, int]]
    interfaces: dict[str, dict[str, int]]
    scheduler: dict[str, int]


def declared_limits(xml: str) -> Declared:
    """The QoS a domain XML carries: each disk's <iotune>, each interface's <bandwidth>
    (inbound.average...), <cputune>'s shares, quota and period (in libvirt API names)."""
    root = ET.fromstring(xml)
    iotune: dict[str, dict[str, int]] = {}
    for disk in root.iter("disk"):
        target = disk.find("target")
        if target is None:
            continue
        tune = disk.find("iotune")
        iotune[target.get("dev", "")] = {
            key: int(tune.findtext(key) or 0)
            for key in IOTUNE_ELEMENTS
            if tune is not None and tune.find(key) is not None
        }
    interfaces: dict[str, dict[str, int]] = {}
    for interface in root.iter("interface"):
        target = interface.find("target")
        if target is None:
            continue
        values: dict[str, int] = {}
        for way in ("inbound", "outbound"):
            element = interface.find(f"bandwidth/{way}")
            if element is not None:
                for attribute in BANDWIDTH_ATTRIBUTES:
                    if element.get(attribute):
                        values[f"{way}.{attribute}"] = int(element.get(attribute, "0"))
        interfaces[target.get("dev", "")] = values
    scheduler = {
        name: int(root.findtext(f"cputune/{tag}") or 0)
        for tag, name in SCHEDULER.items()
        if root.find(f"cputune/{tag}") is not None
    }
    return Declared(iotune, interfaces, scheduler)


@dataclass(frozen=True, slots=True)
class Row:
    layer: str  # libvirt cputune, libvirt iotune, libvirt bandwidth
    device: str  # a disk target, a tap, or "cpu"
    key: str
    declared: int | None  # None: the plan declares nothing, the host holds something
    host: int | None  # None: the host does not hold it
    status: str  # holds, differs, missing, not declared

    def to_json(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "device": self.device,
            "key": self.key,
            "declared": self.declared,
            "host": self.host,
            "status": self.status,
        }


def _compare(
    layer: str, device: str, declared: Mapping[str, int], held: Mapping[str, int] | None
) -> list[Row]:
    rows = []
    have = {k: v for k, v in (held or {}).items() if v}  # 0: unset, as libvirt reports it
    for key in sorted(set(declared) | set(have)):
        want = declared.get(key)
        got = have.get(key)
        if want is None:
            status = "not declared"
        elif got is None:
            status = "missing"
        else:
            status = "holds" if got == want else "differs"
        rows.append(Row(layer, device, key, want, got, status))
    return rows


def _compare_tc(tap: str, declared: Mapping[str, int], held: Mapping[str, int] | None) -> list[Row]:
    """tc keeps a burst as time at the rate and prints rates and sizes rounded, so what
    libvirt set comes back a little off (measured: a 1024 KiB burst at 125000 KB/s reads
    1023): within 1% (or one unit) it holds, and the row shows what tc printed."""
    rows = []
    for row in _compare("tc on the tap", tap, declared, held):
        if row.status == "differs" and row.declared is not None and row.host is not None:
            if abs(row.host - row.declared) <= max(1, row.declared // 100):
                row = replace(row, status="holds")
        rows.append(row)
    return rows


def _compare_values(
    layer: str, device: str, declared: Mapping[str, int], held: Mapping[str, int] | None
) -> list[Row]:
    """As _compare, for columns where 0 is a value (OVS policing 0: none, declared so)."""
    rows = []
    for key, want in sorted(declared.items()):
        got = None if held is None else held.get(key)
        status = "missing" if got is None else "holds" if got == want else "differs"
        rows.append(Row(layer, device, key, want, got, status))
    return rows


def inspect_domain(
    plan_xml: str,
    host: HostDomain | None,
    plan_ovs: Sequence[Sequence[str]] = (),
    plan_ovn: Sequence[OvnQosRow] = (),
) -> list[Row]:
    """Every limit the plan's domain (and its `ovs` commands and OVN rows) declare against
    the host's domain (None: the host runs no such domain, so every limit is missing)."""
    want = declared_limits(plan_xml)
    rows: list[Row] = []
    # Only what the plan declares: libvirt reports every scheduler value, its defaults
    # (1024 shares, a quota of -1) included, and a default is no finding.
    held_scheduler = (
        None if host is None else {k: v for k, v in host.scheduler.items() if k in want.scheduler}
    )
    rows += _compare("libvirt cputune", "cpu", want.scheduler, held_scheduler)
    if host is None or host.cgroup is not None:
        in_files = None if host is None or host.cgroup is None else host.cgroup
        held_files = (
            None if in_files is None else {k: v for k, v in in_files.items() if k in want.scheduler}
        )
        rows += _compare("cgroup files", "cpu", want.scheduler, held_files)
    for target, values in sorted(want.iotune.items()):
        held = None if host is None else host.iotune.get(target)
        rows += _compare("libvirt iotune", target, values, held)
    for tap, values in sorted(want.interfaces.items()):
        held = None if host is None else host.interfaces.get(tap)
        rows += _compare("libvirt bandwidth", tap, values, held)
    for tap, values in sorted(want.interfaces.items()):
        if host is not None and host.tc is None:
            break  # tc was not read: nothing to say about it
        on_tap = None if host is None or host.tc is None else host.tc.get(tap, {})
        # libvirt's outbound police has no peak (virNetDevBandwidthSet uses average and
        # burst only): a declared outbound peak has nothing in tc to compare with.
        in_tc = {k: v for k, v in values.items() if k != "outbound.peak"}
        # Only what the plan declares: libvirt writes a ceil and a burst of its own when
        # the XML names none, and those defaults are no finding.
        held = None if on_tap is None else {k: v for k, v in on_tap.items() if k in in_tc}
        rows += _compare_tc(tap, in_tc, held)
    if host is not None and host.ovs is not None:
        for tap, values in sorted(declared_ovs_policing(plan_ovs).items()):
            rows += _compare_values("OVS Interface", tap, values, host.ovs.get(tap))
    if host is not None and host.ovn is not None:
        rows += _compare_ovn(plan_ovn, host.ovn)
    return rows


def render_inspect(name: str, rows: list[Row]) -> str:
    lines = [f"{name}: {sum(r.status == 'holds' for r in rows)} of {len(rows)} limits hold", ""]
    for r in rows:
        if r.status == "holds":
            text = f"holds     {r.declared}"
        elif r.status == "differs":
            text = f"DIFFERS   declared {r.declared}, host {r.host}"
        elif r.status == "missing":
            text = f"MISSING   declared {r.declared}, the host holds none"
        else:
            text = f"extra     the host holds {r.host}, the plan declares none"
        lines.append(f"{r.layer:<18} {r.device:<16} {r.key:<22} {text}")
    return "\n".join(lines).rstrip() + "\n"
