"""Neutron QoS rule JSON <-> model rules (neutron-lib api definitions qos*.py).

Field names and defaults as the Networking API v2.0 has them: `max_kbps`, `max_burst_kbps`
(a size in kilobits, despite the name), `min_kbps`, `max_kpps`, `max_burst_kpps`, `min_kpps`,
`dscp_mark`, `direction`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    Kilobits,
    KilobitsPerSecond,
    Kilopackets,
    KilopacketsPerSecond,
    bits_per_s_to_kilobits_per_s,
    bits_to_kilobits,
    kilobits_per_s_to_bits_per_s,
    kilobits_to_bits,
    kilopackets_per_s_to_packets_per_s,
    kilopackets_to_packets,
    packets_per_s_to_kilopackets_per_s,
    packets_to_kilopackets,
)

# The fields each rule type accepts; `type`/`id`/`name`/`qos_policy_id`/`tenant_id`/
# `project_id` are handled by the caller.
RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "bandwidth_limit": ("max_kbps", "max_burst_kbps", "direction"),
    "dscp_marking": ("dscp_mark",),
    "minimum_bandwidth": ("min_kbps", "direction"),
    "packet_rate_limit": ("max_kpps", "max_burst_kpps", "direction"),
    "minimum_packet_rate": ("min_kpps", "direction"),
}
_REQUIRED: dict[str, str] = {
    "bandwidth_limit": "max_kbps",
    "dscp_marking": "dscp_mark",
    "minimum_bandwidth": "min_kbps",
    "packet_rate_limit": "max_kpps",
    "minimum_packet_rate": "min_kpps",
}
_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "bandwidth_limit": ("egress", "ingress"),
    "minimum_bandwidth": ("egress", "ingress"),
    "packet_rate_limit": ("egress", "ingress"),
    "minimum_packet_rate": ("any", "egress", "ingress"),
}
_IGNORED_FIELDS = frozenset({"type", "id", "name", "qos_policy_id", "tenant_id", "project_id"})


def _int_field(body: Mapping[str, Any], name: str, key: str, default: int | None = None) -> int:
    if name not in body or body[name] is None:
        if default is None:
            raise InvalidInput(
                f"{key}.{name}", None, f"an integer from 0 to {NEUTRON_INT_MAX}", "required"
            )
        return default
    return parse_int(f"{key}.{name}", body[name], 0, NEUTRON_INT_MAX)


def _direction(rule_type: str, body: Mapping[str, Any], key: str) -> Direction:
    value = body.get("direction", "egress")
    allowed = _DIRECTIONS[rule_type]
    if value not in allowed:
        raise InvalidInput(f"{key}.direction", value, "one of " + ", ".join(allowed))
    return Direction(value)


def rule_from_json(rule_type: str, body: Mapping[str, Any], key: str = "rule") -> Rule:
    """One rule from its API body. Unknown fields are refused, as Neutron's API does."""
    if rule_type not in RULE_TYPES:
        raise InvalidInput(f"{key}.type", rule_type, "one of " + ", ".join(RULE_TYPES))
    for name in body:
        if name not in RULE_FIELDS[rule_type] and name not in _IGNORED_FIELDS:
            raise InvalidInput(
                f"{key}.{name}",
                body[name],
                f"the fields of a {rule_type} rule: " + ", ".join(RULE_FIELDS[rule_type]),
                "unrecognized attribute",
            )
    rule_id = str(body.get("id") or "")
    if rule_type == "bandwidth_limit":
        return BandwidthLimitRule(
            max_rate_bits_per_s=kilobits_per_s_to_bits_per_s(
                KilobitsPerSecond(_int_field(body, "max_kbps", key))
            ),
            max_burst_bits=kilobits_to_bits(Kilobits(_int_field(body, "max_burst_kbps", key, 0))),
            direction=_direction(rule_type, body, key),
            id=rule_id,
        )
    if rule_type == "dscp_marking":
        mark = _int_field(body, "dscp_mark", key)
        return DscpMarkingRule(dscp_mark=validate_dscp_mark(f"{key}.dscp_mark", mark), id=rule_id)
    if rule_type == "minimum_bandwidth":
        return MinimumBandwidthRule(
            min_rate_bits_per_s=kilobits_per_s_to_bits_per_s(
                KilobitsPerSecond(_int_field(body, "min_kbps", key))
            ),
            direction=_direction(rule_type, body, key),
            id=rule_id,
        )
    if rule_type == "packet_rate_limit":
        return PacketRateLimitRule(
            max_rate_packets_per_s=kilopackets_per_s_to_packets_per_s(
                KilopacketsPerSecond(_int_field(body, "max_kpps", key))
            ),
            max_burst_packets=kilopackets_to_packets(
                Kilopackets(_int_field(body, "max_burst_kpps", key, 0))
            ),
            direction=_direction(rule_type, body, key),
            id=rule_id,
        )
    return MinimumPacketRateRule(
        min_rate_packets_per_s=kilopackets_per_s_to_packets_per_s(
            KilopacketsPerSecond(_int_field(body, "min_kpps", key))
        ),
        direction=_direction(rule_type, body, key),
        id=rule_id,
    )


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The API representation of a rule (without policy-level fields)."""
    body: dict[str, Any] = {"id": rule.id, "type": rule.type_name}
    if isinstance(rule, BandwidthLimitRule):
        body["max_kbps"] = bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)
        body["max_burst_kbps"] = bits_to_kilobits(rule.max_burst_bits)
        body["direction"] = rule.direction.value
    elif isinstance(rule, DscpMarkingRule):
        body["dscp_mark"] = rule.dscp_mark
    elif isinstance(rule, MinimumBandwidthRule):
        body["min_kbps"] = bits_per_s_to_kilobits_per_s(rule.min_rate_bits_per_s)
        body["direction"] = rule.direction.value
    elif isinstance(rule, PacketRateLimitRule):
        body["max_kpps"] = packets_per_s_to_kilopackets_per_s(rule.max_rate_packets_per_s)
        body["max_burst_kpps"] = packets_to_kilopackets(rule.max_burst_packets)
        body["direction"] = rule.direction.value
    else:
        body["min_kpps"] = packets_per_s_to_kilopackets_per_s(rule.min_rate_packets_per_s)
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
