"""Neutron QoS rule JSON <-> model rules (neutron-lib api definitions qos*.py).

Field names and defaults as the Networking API v2.0 has them: `max_kbps`, `max_burst_kbps`
(a size in kilobits, despite the name), `min_kbps`, `max_kpps`, `max_burst_kpps`, `min_kpps`,
`dscp_mark`, `direction`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qosplane.model.errors import InvalidInput, parse_int
from qosplane.model.network_qos import (
    NEUTRON_INT_MAX,
    RULE_TYPES,
    BandwidthLimitRule,
    Direction,
    DscpMarkingRule,
    MinimumBandwidthRule,
    MinimumPacketRateRule,
    PacketRateLimitRule,
    QosPolicy,
    Rule,
    validate_dscp_mark,
    validate_rules,
)
from qosplane.model.units import (
    Bits,
    BitsPerSecond,
    Kilobits,
    KilobitsPerSecond,
    Kilopackets,
    KilopacketsPerSecond,
    Packets,
    PacketsPerSecond,
    bits_per_s_to_kilobits_per_s,
    bits_to_kilobits,
    kilobits_per_s_to_bits_per_s,
    kilobits_to_bits,
    kilopackets_per_s_to_packets_per_s,
    kilopackets_to_packets,
    packets_per_s_to_kilopackets_per_s,
    packets_to_kilopackets,
)


@dataclass(frozen=True, slots=True)
class WireField:
    """One API field of a rule type and the model field it is, in canonical units."""

    api: str  # as the Networking API spells it: max_kbps
    model: str  # the model's field, unit in its name: max_rate_bits_per_s
    to_model: Callable[[int], int]  # the one conversion, named in model/units.py
    to_api: Callable[[int], int]
    required: bool = True  # optional fields default to 0 (the back end's default)


@dataclass(frozen=True, slots=True)
class RuleType:
    """A Neutron QoS rule type, described once: its model class, its API fields and the
    directions it takes (none: the rule has no direction field, as dscp_marking)."""

    name: str
    model: type[Rule]
    fields: tuple[WireField, ...]
    directions: tuple[str, ...] = ("egress", "ingress")

    def api_fields(self) -> tuple[str, ...]:
        return tuple(f.api for f in self.fields) + (("direction",) if self.directions else ())


def _kbps(value: int) -> int:
    return kilobits_per_s_to_bits_per_s(KilobitsPerSecond(value))


def _kbit(value: int) -> int:
    return kilobits_to_bits(Kilobits(value))


def _kpps(value: int) -> int:
    return kilopackets_per_s_to_packets_per_s(KilopacketsPerSecond(value))


def _kpkt(value: int) -> int:
    return kilopackets_to_packets(Kilopackets(value))


def _same(value: int) -> int:
    return value


def _to_kbps(value: int) -> int:
    return bits_per_s_to_kilobits_per_s(BitsPerSecond(value))


def _to_kbit(value: int) -> int:
    return bits_to_kilobits(Bits(value))


def _to_kpps(value: int) -> int:
    return packets_per_s_to_kilopackets_per_s(PacketsPerSecond(value))


def _to_kpkt(value: int) -> int:
    return packets_to_kilopackets(Packets(value))


_MAX_KBPS = WireField("max_kbps", "max_rate_bits_per_s", _kbps, _to_kbps)
_MIN_KBPS = WireField("min_kbps", "min_rate_bits_per_s", _kbps, _to_kbps)

# neutron_lib/api/definitions/qos.py and qos_pps_rule.py, qos_pps_minimum_rule.py.
RULE_TABLE: dict[str, RuleType] = {
    t.name: t
    for t in (
        RuleType(
            "bandwidth_limit",
            BandwidthLimitRule,
            (
                _MAX_KBPS,
                WireField("max_burst_kbps", "max_burst_bits", _kbit, _to_kbit, False),
            ),
        ),
        RuleType(
            "dscp_marking",
            DscpMarkingRule,
            (WireField("dscp_mark", "dscp_mark", _same, _same),),
            (),
        ),
        RuleType("minimum_bandwidth", MinimumBandwidthRule, (_MIN_KBPS,)),
        RuleType(
            "packet_rate_limit",
            PacketRateLimitRule,
            (
                WireField("max_kpps", "max_rate_packets_per_s", _kpps, _to_kpps),
                WireField("max_burst_kpps", "max_burst_packets", _kpkt, _to_kpkt, False),
            ),
        ),
        RuleType(
            "minimum_packet_rate",
            MinimumPacketRateRule,
            (WireField("min_kpps", "min_rate_packets_per_s", _kpps, _to_kpps),),
            ("any", "egress", "ingress"),
        ),
    )
}

# The fields each rule type accepts; `type`/`id`/`name`/`qos_policy_id`/`tenant_id`/
# `project_id` are handled by the caller.
RULE_FIELDS: dict[str, tuple[str, ...]] = {name: t.api_fields() for name, t in RULE_TABLE.items()}
_IGNORED_FIELDS = frozenset({"type", "id", "name", "qos_policy_id", "tenant_id", "project_id"})


def _int_field(body: Mapping[str, Any], name: str, key: str, default: int | None = None) -> int:
    if name not in body or body[name] is None:
        if default is None:
            raise InvalidInput(
                f"{key}.{name}", None, f"an integer from 0 to {NEUTRON_INT_MAX}", "required"
            )
        return default
    return parse_int(f"{key}.{name}", body[name], 0, NEUTRON_INT_MAX)


def _direction(rule_type: RuleType, body: Mapping[str, Any], key: str) -> Direction:
    value = body.get("direction", "egress")
    if value not in rule_type.directions:
        raise InvalidInput(f"{key}.direction", value, "one of " + ", ".join(rule_type.directions))
    return Direction(value)


def rule_from_json(rule_type: str, body: Mapping[str, Any], key: str = "rule") -> Rule:
    """One rule from its API body. Unknown fields are refused, as Neutron's API does."""
    if rule_type not in RULE_TABLE:
        raise InvalidInput(f"{key}.type", rule_type, "one of " + ", ".join(RULE_TYPES))
    kind = RULE_TABLE[rule_type]
    for name in body:
        if name not in RULE_FIELDS[rule_type] and name not in _IGNORED_FIELDS:
            raise InvalidInput(
                f"{key}.{name}",
                body[name],
                f"the fields of a {rule_type} rule: " + ", ".join(RULE_FIELDS[rule_type]),
                "unrecognized attribute",
            )
    values: dict[str, Any] = {
        f.model: f.to_model(_int_field(body, f.api, key, None if f.required else 0))
        for f in kind.fields
    }
    if "dscp_mark" in values:
        values["dscp_mark"] = validate_dscp_mark(f"{key}.dscp_mark", values["dscp_mark"])
    if kind.directions:
        values["direction"] = _direction(kind, body, key)
    return kind.model(**values, id=str(body.get("id") or ""))


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The API representation of a rule (without policy-level fields)."""
    kind = RULE_TABLE[rule.type_name]
    body: dict[str, Any] = {"id": rule.id, "type": rule.type_name}
    for f in kind.fields:
        body[f.api] = f.to_api(getattr(rule, f.model))
    if kind.directions:
        body["direction"] = rule.direction.value
    return body


def policy_from_json(body: Mapping[str, Any], key: str = "qos_policy") -> QosPolicy:
    """A policy with embedded rules (each rule carries its `type`), validated as a whole."""
    if not isinstance(body, Mapping):
        raise InvalidInput(key, body, "a mapping with name and rules")
    raw_rules = body.get("rules") or []
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str):
        raise InvalidInput(f"{key}.rules", raw_rules, "a list of rules")
    rules = []
    for index, raw in enumerate(raw_rules):
        rule_key = f"{key}.rules[{index}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(rule_key, raw, "a mapping with type and the rule's fields")
        rules.append(rule_from_json(str(raw.get("type", "")), raw, rule_key))
    tags = body.get("tags") or ()
    return QosPolicy(
        name=str(body.get("name") or ""),
        id=str(body.get("id") or ""),
        description=str(body.get("description") or ""),
        shared=bool(body.get("shared", False)),
        is_default=bool(body.get("is_default", False)),
        project_id=str(body.get("project_id") or ""),
        tags=tuple(str(t) for t in tags),
        rules=validate_rules(rules, f"{key}.rules"),
    )
