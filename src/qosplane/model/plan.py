"""The compiled plan of one instance on one host, typed end to end.

The compiler makes a `HostPlan`; the store keeps it, the watch carries it to the host's
agent, and explain reads it, all as these frozen values. JSON exists only where the plan
crosses a process boundary (`to_json`/`from_json`), and its shape is the contract of
design.md section 1: `qosplane plan --json` and the watch API print exactly what they did
before the plan was typed, so other tools keep working.

A limit is one of a few typed values, each naming its unit in its field names. Each is also a
read-only mapping of its set fields (`{"rate_bits_per_s": ..., "burst_bytes": ...}`), which
is exactly its JSON form and what a reader of `explain --json` sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import FrozenInstanceError, dataclass, field, fields
from typing import Any, ClassVar

Argv = list[str]


class Limit(Mapping[str, int]):
    """A limit in canonical units, one subclass per kind (Rate, DscpMark, DiskIops, ...).

    Each is also the read-only mapping of its set fields, by name, and that mapping is the
    one copy of its values: made once by the constructor (a plan's JSON names every limit two
    or three times, and a compiled plan holds tens of thousands), read by the typed fields.
    Frozen like the dataclasses around it, at the cost of one dict per limit."""

    __slots__ = ("_json",)
    _json: dict[str, int]
    __match_args__: ClassVar[tuple[str, ...]]  # each subclass: its fields, in order

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getitem__(self, key: str) -> int:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    def __contains__(self, key: object) -> bool:
        return key in self._json

    def __eq__(self, other: object) -> bool:
        """Equal to any mapping of the same fields: a limit is its JSON form."""
        if isinstance(other, Limit):
            return self._json == other._json
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._json == dict(other.items())

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._json.items())))

    def __repr__(self) -> str:
        """As a dataclass says it: every field, unset ones as None."""
        values = ", ".join(f"{name}={self._json.get(name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({values})"

    def __reduce__(self) -> tuple[type[Limit], tuple[int | None, ...]]:
        """Copies and pickles go through the constructor: the one place the slot is set."""
        return type(self), tuple(self._json.get(name) for name in self.__match_args__)

    def to_json(self) -> dict[str, int]:
        return dict(self._json)

    def strictness(self) -> int:
        """The number by which a stricter limit of the same kind is smaller."""
        return 0


# Sets a limit's one slot past its frozen __setattr__: the constructors' only write.
_set_json: Callable[[Limit, dict[str, int]], None] = Limit.__dict__["_json"].__set__


class Rate(Limit):
    """A bandwidth cap: sustained rate, a peak it may reach while its burst lasts, burst."""

    __slots__ = ()
    __match_args__ = ("rate_bits_per_s", "ceil_bits_per_s", "burst_bytes")

    def __init__(
        self,
        rate_bits_per_s: int,
        ceil_bits_per_s: int | None = None,
        burst_bytes: int | None = None,
    ) -> None:
        json = {"rate_bits_per_s": rate_bits_per_s}
        if ceil_bits_per_s is not None:
            json["ceil_bits_per_s"] = ceil_bits_per_s
        if burst_bytes is not None:
            json["burst_bytes"] = burst_bytes
        _set_json(self, json)

    @property
    def rate_bits_per_s(self) -> int:
        return self._json["rate_bits_per_s"]

    @property
    def ceil_bits_per_s(self) -> int | None:
        return self._json.get("ceil_bits_per_s")

    @property
    def burst_bytes(self) -> int | None:
        return self._json.get("burst_bytes")

    def strictness(self) -> int:
        return self._json["rate_bits_per_s"]


class MinRate(Limit):
    """A bandwidth guarantee, with the cap it comes with where the layer sets one."""

    __slots__ = ()
    __match_args__ = ("min_rate_bits_per_s", "rate_bits_per_s")

    def __init__(self, min_rate_bits_per_s: int, rate_bits_per_s: int | None = None) -> None:
        json = {"min_rate_bits_per_s": min_rate_bits_per_s}
        if rate_bits_per_s is not None:
            json["rate_bits_per_s"] = rate_bits_per_s
        _set_json(self, json)

    @property
    def min_rate_bits_per_s(self) -> int:
        return self._json["min_rate_bits_per_s"]

    @property
    def rate_bits_per_s(self) -> int | None:
        return self._json.get("rate_bits_per_s")

    def strictness(self) -> int:
        return self._json.get("rate_bits_per_s") or 0


class PacketRate(Limit):
    __slots__ = ()
    __match_args__ = ("rate_packets_per_s", "burst_packets")

    def __init__(self, rate_packets_per_s: int, burst_packets: int | None = None) -> None:
        json = {"rate_packets_per_s": rate_packets_per_s}
        if burst_packets is not None:
            json["burst_packets"] = burst_packets
        _set_json(self, json)

    @property
    def rate_packets_per_s(self) -> int:
        return self._json["rate_packets_per_s"]

    @property
    def burst_packets(self) -> int | None:
        return self._json.get("burst_packets")

    def strictness(self) -> int:
        return self._json["rate_packets_per_s"]


class MinPacketRate(Limit):
    __slots__ = ()
    __match_args__ = ("min_rate_packets_per_s",)

    def __init__(self, min_rate_packets_per_s: int) -> None:
        _set_json(self, {"min_rate_packets_per_s": min_rate_packets_per_s})

    @property
    def min_rate_packets_per_s(self) -> int:
        return self._json["min_rate_packets_per_s"]


class DscpMark(Limit):
    __slots__ = ()
    __match_args__ = ("dscp", "tos")

    def __init__(self, dscp: int, tos: int) -> None:
        _set_json(self, {"dscp": dscp, "tos": tos})

    @property
    def dscp(self) -> int:
        return self._json["dscp"]

    @property
    def tos(self) -> int:
        """The IPv4 TOS byte the mark becomes: dscp << 2."""
        return self._json["tos"]


class DiskBytes(Limit):
    __slots__ = ()
    __match_args__ = ("bytes_per_s", "peak_bytes_per_s")

    def __init__(self, bytes_per_s: int, peak_bytes_per_s: int | None = None) -> None:
        json = {"bytes_per_s": bytes_per_s}
        if peak_bytes_per_s is not None:
            json["peak_bytes_per_s"] = peak_bytes_per_s
        _set_json(self, json)

    @property
    def bytes_per_s(self) -> int:
        return self._json["bytes_per_s"]

    @property
    def peak_bytes_per_s(self) -> int | None:
        return self._json.get("peak_bytes_per_s")

    def strictness(self) -> int:
        return self._json["bytes_per_s"]


class DiskIops(Limit):
    __slots__ = ()
    __match_args__ = ("iops", "peak_iops")

    def __init__(self, iops: int, peak_iops: int | None = None) -> None:
        json = {"iops": iops}
        if peak_iops is not None:
            json["peak_iops"] = peak_iops
        _set_json(self, json)

    @property
    def iops(self) -> int:
        return self._json["iops"]

    @property
    def peak_iops(self) -> int | None:
        return self._json.get("peak_iops")

    def strictness(self) -> int:
        return self._json["iops"]


class CpuWeight(Limit):
    __slots__ = ()
    __match_args__ = ("weight",)

    def __init__(self, weight: int) -> None:
        _set_json(self, {"weight": weight})

    @property
    def weight(self) -> int:
        """cpu.shares (v1) or the shares number libvirt turns into cpu.weight (v2)."""
        return self._json["weight"]


class CpuQuota(Limit):
    __slots__ = ()
    __match_args__ = ("quota_us", "period_us", "cpu_per_mille_per_vcpu")

    def __init__(self, quota_us: int, period_us: int, cpu_per_mille_per_vcpu: int) -> None:
        _set_json(
            self,
            {
                "quota_us": quota_us,
                "period_us": period_us,
                "cpu_per_mille_per_vcpu": cpu_per_mille_per_vcpu,
            },
        )

    @property
    def quota_us(self) -> int:
        return self._json["quota_us"]

    @property
    def period_us(self) -> int:
        return self._json["period_us"]

    @property
    def cpu_per_mille_per_vcpu(self) -> int:
        return self._json["cpu_per_mille_per_vcpu"]


# The field that tells each limit type apart in JSON, in the order they are tried.
_LIMIT_BY_KEY: tuple[tuple[str, type[Any]], ...] = (
    ("min_rate_bits_per_s", MinRate),
    ("rate_bits_per_s", Rate),
    ("rate_packets_per_s", PacketRate),
    ("min_rate_packets_per_s", MinPacketRate),
    ("dscp", DscpMark),
    ("bytes_per_s", DiskBytes),
    ("iops", DiskIops),
    ("weight", CpuWeight),
    ("quota_us", CpuQuota),
)


def limit_from_json(data: Mapping[str, int]) -> Limit:
    for key, cls in _LIMIT_BY_KEY:
        if key in data:
            limit: Limit = cls(**data)
            return limit
    raise ValueError(f"not a limit: {dict(data)!r}")


def _slot_setters(cls: type[Any]) -> tuple[Callable[[Any, Any], None], ...]:
    """The __set__ of each field's slot, in field order, for a frozen slots dataclass whose
    __init__ is its own: the generated one calls object.__setattr__ per field, about twice
    the cost, and a plan makes some thirty such values. Only __init__ writes through these;
    everyone else still meets the frozen __setattr__."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


@dataclass(frozen=True, slots=True, init=False)
class Declared:
    source: str  # "flavor m1.resquota", "port policy bw-limiter", ...
    key: str  # as the operator wrote it
    value: str  # with its upstream unit

    def __init__(self, source: str, key: str, value: str) -> None:
        _declared_source(self, source)
        _declared_key(self, key)
        _declared_value(self, value)

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "key": self.key, "value": self.value}


_declared_source, _declared_key, _declared_value = _slot_setters(Declared)


@dataclass(frozen=True, slots=True, init=False)
class Enforcement:
    """One layer's artifact that could enforce a limit, and whether it holds there."""

    layer: str  # libvirt, neutron-ovs, sriov-agent, qemu, cgroup
    artifact: str  # the concrete thing on the host
    mechanism: str  # shape, police, meter, guarantee, mark, throttle, weight, quota
    as_written: str  # the values as that layer writes them
    limit: Limit
    holds: bool = True
    note: str = ""

    def __init__(
        self,
        layer: str,
        artifact: str,
        mechanism: str,
        as_written: str,
        limit: Limit,
        holds: bool = True,
        note: str = "",
    ) -> None:
        _enforcement_layer(self, layer)
        _enforcement_artifact(self, artifact)
        _enforcement_mechanism(self, mechanism)
        _enforcement_as_written(self, as_written)
        _enforcement_limit(self, limit)
        _enforcement_holds(self, holds)
        _enforcement_note(self, note)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "layer": self.layer,
            "artifact": self.artifact,
            "mechanism": self.mechanism,
            "as_written": self.as_written,
            "limit": self.limit.to_json(),
            "holds": self.holds,
        }
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Enforcement:
        return cls(
            str(data["layer"]),
            str(data["artifact"]),
            str(data["mechanism"]),
            str(data["as_written"]),
            limit_from_json(data["limit"]),
            bool(data["holds"]),
            str(data.get("note", "")),
        )


(
    _enforcement_layer,
    _enforcement_artifact,
    _enforcement_mechanism,
    _enforcement_as_written,
    _enforcement_limit,
    _enforcement_holds,
    _enforcement_note,
) = _slot_setters(Enforcement)


@dataclass(slots=True, init=False)
class EffectiveLimit:
    """Per device and guest-relative direction: what was declared, every layer's artifact
    for it, and the conflicts and losses on the way. Not frozen: the compiler fills its
    lists while it builds the plan; everything after only reads it."""

    device: str
    direction: str  # guest-relative: ingress/egress; read/write/total for disks; '' for cpu
    kind: str  # bandwidth, packet_rate, min_bandwidth, min_packet_rate, dscp, disk_bytes, ...
    declared: list[Declared]
    candidates: list[Enforcement]
    conflicts: list[str]
    losses: list[str]
    port_id: str

    def __init__(
        self,
        device: str,
        direction: str,
        kind: str,
        declared: list[Declared] | None = None,
        candidates: list[Enforcement] | None = None,
        conflicts: list[str] | None = None,
        losses: list[str] | None = None,
        port_id: str = "",
    ) -> None:
        """The dataclass's own, less its four default_factory calls: the compiler makes
        about ten entries per plan, most with empty lists to fill."""
        self.device = device
        self.direction = direction
        self.kind = kind
        self.declared = [] if declared is None else declared
        self.candidates = [] if candidates is None else candidates
        self.conflicts = [] if conflicts is None else conflicts
        self.losses = [] if losses is None else losses
        self.port_id = port_id

    def holding(self) -> list[Enforcement]:
        return [c for c in self.candidates if c.holds]

    def effective(self) -> Enforcement | None:
        """The strictest holding enforcement (lowest rate for caps)."""
        holding = self.holding()
        if len(holding) < 2:  # most entries: one artifact, or none that holds
            return holding[0] if holding else None
        return min(holding, key=lambda e: e.limit.strictness())

    def to_json(self) -> dict[str, Any]:
        eff = self.effective()
        enforced_by = eff.to_json() if eff else None
        out: dict[str, Any] = {
            "device": self.device,
            "direction": self.direction,
            "kind": self.kind,
            "limit": dict(enforced_by["limit"]) if enforced_by else None,
            "enforced_by": enforced_by,
            # Declared.to_json's dict, inline: a plan's JSON has thousands of them.
            "declared": [
                {"source": d.source, "key": d.key, "value": d.value} for d in self.declared
            ],
            "artifacts": [c.to_json() for c in self.candidates],
            "conflicts": list(self.conflicts),
            "losses": list(self.losses),
        }
        if self.port_id:
            out["port_id"] = self.port_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EffectiveLimit:
        return cls(
            str(data["device"]),
            str(data["direction"]),
            str(data["kind"]),
            [Declared(d["source"], d["key"], d["value"]) for d in data["declared"]],
            [Enforcement.from_json(a) for a in data["artifacts"]],
            [str(c) for c in data["conflicts"]],
            [str(loss) for loss in data["losses"]],
            str(data.get("port_id", "")),
        )


@dataclass(frozen=True, slots=True, init=False)
class Finding:
    """A warning or error a plan carries: a code, the device and the key involved."""

    code: str
    message: str
    device: str = ""
    key: str = ""

    def __init__(self, code: str, message: str, device: str = "", key: str = "") -> None:
        _finding_code(self, code)
        _finding_message(self, message)
        _finding_device(self, device)
        _finding_key(self, key)

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.device:
            out["device"] = self.device
        if self.key:
            out["key"] = self.key
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> Finding:
        return cls(data["code"], data["message"], data.get("device", ""), data.get("key", ""))


_finding_code, _finding_message, _finding_device, _finding_key = _slot_setters(Finding)


OVN_QOS_DEFAULT_RULE_PRIORITY = 2002  # neutron/common/ovn/constants.py
OVN_QOS_FIP_RULE_PRIORITY = 2003  # floating IPs, which qosplane's ports do not carry


def ovn_logical_switch(network_id: str) -> str:
    """neutron/common/ovn/utils.py ovn_name: a network's Logical_Switch."""
    return f"neutron-{network_id}"


@dataclass(frozen=True, slots=True)
class OvnQosRow:
    """One row of the OVN Northbound `QoS` table as ML2/OVN writes it for a port and a
    direction (neutron/plugins/ml2/drivers/ovn/mech_driver/ovsdb/extensions/qos.py;
    ovn-nb(5)): a bandwidth limit and a DSCP mark share the row of their direction."""

    switch: str  # the Logical_Switch: neutron-<network id>
    direction: str  # from-lport (the port's egress) or to-lport (its ingress)
    priority: int
    match: str
    port_id: str  # external_ids neutron:port_id
    rate_kbit_per_s: int | None = None  # bandwidth:rate, kbit/s as the NB column holds it
    burst_kbit: int | None = None  # bandwidth:burst, kbit
    dscp: int | None = None  # action:dscp

    def to_json(self) -> dict[str, Any]:
        """The row by its NB column names and their units (kbit/s, kbit, DSCP value)."""
        bandwidth = {
            k: v
            for k, v in (("rate", self.rate_kbit_per_s), ("burst", self.burst_kbit))
            if v is not None
        }
        return {
            "switch": self.switch,
            "direction": self.direction,
            "priority": self.priority,
            "match": self.match,
            "bandwidth": bandwidth,
            "action": {} if self.dscp is None else {"dscp": self.dscp},
            "external_ids": {"neutron:port_id": self.port_id},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OvnQosRow:
        bandwidth, action = data.get("bandwidth") or {}, data.get("action") or {}
        return cls(
            switch=str(data["switch"]),
            direction=str(data["direction"]),
            priority=int(data["priority"]),
            match=str(data["match"]),
            port_id=str(data["external_ids"]["neutron:port_id"]),
            rate_kbit_per_s=int(bandwidth["rate"]) if "rate" in bandwidth else None,
            burst_kbit=int(bandwidth["burst"]) if "burst" in bandwidth else None,
            dscp=int(action["dscp"]) if "dscp" in action else None,
        )


@dataclass(frozen=True, slots=True)
class OvnLspQosOptions:
    """The Logical_Switch_Port options ML2/OVN sets for egress on a flat or VLAN network,
    instead of a QoS row (ovn-nb(5): qos_max_rate and qos_min_rate in bit/s, qos_burst in
    bits, stored as strings); None removes the key."""

    port_id: str  # the LSP's name
    max_rate_bits_per_s: int | None = None
    burst_bits: int | None = None
    min_rate_bits_per_s: int | None = None

    def options(self) -> dict[str, str | None]:
        def text(value: int | None) -> str | None:
            return None if value is None else str(value)

        return {
            "qos_max_rate": text(self.max_rate_bits_per_s),
            "qos_burst": text(self.burst_bits),
            "qos_min_rate": text(self.min_rate_bits_per_s),
        }

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port_id, "options": self.options()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OvnLspQosOptions:
        options = data["options"]

        def number(key: str) -> int | None:
            return None if options.get(key) is None else int(options[key])

        return cls(
            port_id=str(data["port"]),
            max_rate_bits_per_s=number("qos_max_rate"),
            burst_bits=number("qos_burst"),
            min_rate_bits_per_s=number("qos_min_rate"),
        )


@dataclass(frozen=True, slots=True)
class HostPlan:
    """Every artifact OpenStack would write for one instance on one host, and what holds."""

    instance_uuid: str
    instance_name: str
    hostname: str
    domain_xml: str
    qemu_drives: dict[str, str]  # disk target -> its -drive string, in disk order
    cgroup: dict[str, dict[str, str]]  # version -> file -> value
    tc: dict[str, list[Argv]]  # host device -> the argv libvirt runs, in order
    ovs: list[Argv]
    effective: list[EffectiveLimit]
    errors: list[Finding]
    warnings: list[Finding]
    # What ML2/OVN writes to the Northbound database, on a host whose backend is OVN.
    ovn_qos: list[OvnQosRow] = field(default_factory=list)
    ovn_lsp_options: list[OvnLspQosOptions] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `qosplane plan --json` object (design.md section 1)."""
        return {
            "instance": {"uuid": self.instance_uuid, "name": self.instance_name},
            "host": self.hostname,
            "domain_xml": self.domain_xml,
            "qemu_drives": dict(self.qemu_drives),
            "cgroup": {version: dict(files) for version, files in self.cgroup.items()},
            "tc": {dev: [list(a) for a in cmds] for dev, cmds in self.tc.items()},
            "ovs": [list(a) for a in self.ovs],
            "ovn": {
                "qos": [r.to_json() for r in self.ovn_qos],
                "lsp_options": [o.to_json() for o in self.ovn_lsp_options],
            },
            "effective": [e.to_json() for e in self.effective],
            "errors": [f.to_json() for f in self.errors],
            "warnings": [f.to_json() for f in self.warnings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostPlan:
        """The inverse of `to_json`; extra keys (a stored plan's `revision`) are ignored."""
        return cls(
            instance_uuid=str(data["instance"]["uuid"]),
            instance_name=str(data["instance"]["name"]),
            hostname=str(data["host"]),
            domain_xml=str(data["domain_xml"]),
            qemu_drives={str(k): str(v) for k, v in data["qemu_drives"].items()},
            cgroup={
                str(version): {str(k): str(v) for k, v in files.items()}
                for version, files in data["cgroup"].items()
            },
            tc={
                str(dev): [[str(w) for w in argv] for argv in cmds]
                for dev, cmds in data["tc"].items()
            },
            ovs=[[str(w) for w in argv] for argv in data["ovs"]],
            effective=[EffectiveLimit.from_json(e) for e in data["effective"]],
            errors=[Finding.from_json(f) for f in data["errors"]],
            warnings=[Finding.from_json(f) for f in data["warnings"]],
            ovn_qos=[OvnQosRow.from_json(r) for r in data.get("ovn", {}).get("qos", [])],
            ovn_lsp_options=[
                OvnLspQosOptions.from_json(o) for o in data.get("ovn", {}).get("lsp_options", [])
            ],
        )


# --- what a host runs: a server's plan with its wiring, as the watch carries it ---------------
@dataclass(frozen=True, slots=True)
class WiredAddress:
    address: str  # with its prefix length: 10.0.0.5/24
    gateway: str | None  # the subnet's gateway, same form


@dataclass(frozen=True, slots=True)
class WiredPort:
    """A server's port as a host plugs it in: Nova's tap name, the MAC, the network."""

    id: str
    tap: str
    mac: str
    network_id: str
    mtu_bytes: int
    addresses: tuple[WiredAddress, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tap": self.tap,
            "mac": self.mac,
            "network_id": self.network_id,
            "mtu": self.mtu_bytes,
            "addresses": [{"address": a.address, "gateway": a.gateway} for a in self.addresses],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WiredPort:
        return cls(
            str(data["id"]),
            str(data["tap"]),
            str(data["mac"]),
            str(data["network_id"]),
            int(data.get("mtu") or 1500),
            tuple(WiredAddress(a["address"], a.get("gateway")) for a in data["addresses"]),
        )


@dataclass(frozen=True, slots=True)
class AttachedVolume:
    """A volume as a host exports it: the guest's disk target it follows the image disks as."""

    id: str
    device: str
    size_gb: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "device": self.device, "size_gb": self.size_gb}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttachedVolume:
        return cls(str(data["id"]), str(data["device"]), int(data["size_gb"]))


@dataclass(frozen=True, slots=True)
class DesiredServer:
    """One server as its host must run it: the plan, its revision, its ports and volumes."""

    id: str
    name: str
    plan_revision: int
    plan: HostPlan
    ports: tuple[WiredPort, ...]
    volumes: tuple[AttachedVolume, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "plan_revision": self.plan_revision,
            "plan": self.plan.to_json(),
            "ports": [p.to_json() for p in self.ports],
            "volumes": [v.to_json() for v in self.volumes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DesiredServer:
        return cls(
            str(data["id"]),
            str(data.get("name", "")),
            int(data["plan_revision"]),
            HostPlan.from_json(data["plan"]),
            tuple(WiredPort.from_json(p) for p in data.get("ports", [])),
            tuple(AttachedVolume.from_json(v) for v in data.get("volumes", [])),
        )


@dataclass(frozen=True, slots=True)
class DesiredHost:
    """A watch's answer: the host's revision, and its servers when it changed."""

    revision: int
    changed: bool
    servers: tuple[DesiredServer, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "changed": self.changed,
            "servers": [s.to_json() for s in self.servers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DesiredHost:
        return cls(
            int(data["revision"]),
            bool(data.get("changed")),
            tuple(DesiredServer.from_json(s) for s in data.get("servers", [])),
        )
