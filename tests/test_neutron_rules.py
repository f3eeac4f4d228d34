"""Neutron QoS rules: API bodies <-> model rules, the policy-level checks and which policy
applies to a port.

Upstream: neutron_lib/api/definitions/qos*.py (fields, ranges, defaults, directions),
neutron_lib/constants.py VALID_DSCP_MARKS, neutron/objects/qos/rule.py (duplicates,
should_apply_to_port), neutron/objects/qos/qos_policy_validator.py (parameter conflicts,
minimum_packet_rate any vs directional).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.model.errors import Conflict, InvalidInput
from qosplane.model.network_qos import (
    VALID_DSCP_MARKS,
    BandwidthLimitRule,
    Direction,
    DscpMarkingRule,
    MinimumBandwidthRule,
    MinimumPacketRateRule,
    PacketRateLimitRule,
    QosPolicy,
    Rule,
    check_rule_fits,
    effective_policy,
    validate_rules,
)
from qosplane.model.units import Bits, BitsPerSecond
from qosplane.openstack.neutron import policy_from_json, rule_from_json, rule_to_json

SETTINGS = settings(max_examples=200)
INT_MAX = 2**31 - 1
# neutron_lib/constants.py VALID_DSCP_MARKS
UPSTREAM_DSCP = {
    0,
    8,
    10,
    12,
    14,
    16,
    18,
    20,
    22,
    24,
    26,
    28,
    30,
    32,
    34,
    36,
    38,
    40,
    44,
    46,
    48,
    56,
}
MARKS_TEXT = (
    "one of 0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 44, 46, 48, 56"
)

REQUIRED = {
    "bandwidth_limit": "max_kbps",
    "dscp_marking": "dscp_mark",
    "minimum_bandwidth": "min_kbps",
    "packet_rate_limit": "max_kpps",
    "minimum_packet_rate": "min_kpps",
}
INT_FIELDS = [
    ("bandwidth_limit", "max_kbps"),
    ("bandwidth_limit", "max_burst_kbps"),
    ("minimum_bandwidth", "min_kbps"),
    ("packet_rate_limit", "max_kpps"),
    ("packet_rate_limit", "max_burst_kpps"),
    ("minimum_packet_rate", "min_kpps"),
]
DIRECTIONAL = ["bandwidth_limit", "minimum_bandwidth", "packet_rate_limit", "minimum_packet_rate"]


def body_for(rule_type: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {REQUIRED[rule_type]: 26 if rule_type == "dscp_marking" else 100}
    body.update(extra)
    return body


def bw(max_kbps: int, direction: Direction = Direction.EGRESS, burst_kbit: int = 0) -> Rule:
    rule = rule_from_json(
        "bandwidth_limit",
        {"max_kbps": max_kbps, "max_burst_kbps": burst_kbit, "direction": direction.value},
    )
    assert isinstance(rule, BandwidthLimitRule)
    return rule


def minbw(min_kbps: int, direction: Direction = Direction.EGRESS) -> Rule:
    return rule_from_json("minimum_bandwidth", {"min_kbps": min_kbps, "direction": direction.value})


def mpr(direction: str) -> Rule:
    return rule_from_json("minimum_packet_rate", {"min_kpps": 1, "direction": direction})


# --- rule_from_json: the five types ----------------------------------------------------


def test_bandwidth_limit_defaults_and_units() -> None:
    rule = rule_from_json("bandwidth_limit", {"max_kbps": 3000})
    assert rule == BandwidthLimitRule(
        max_rate_bits_per_s=BitsPerSecond(3_000_000),
        max_burst_bits=Bits(0),
        direction=Direction.EGRESS,
    )
    rule = rule_from_json(
        "bandwidth_limit",
        {"max_kbps": "3000", "max_burst_kbps": 300, "direction": "ingress", "id": "r1"},
    )
    assert isinstance(rule, BandwidthLimitRule)
    assert rule.max_rate_bits_per_s == 3_000_000
    assert rule.max_burst_bits == 300_000  # max_burst_kbps is a size in kbit
    assert rule.direction is Direction.INGRESS
    assert rule.id == "r1"


def test_dscp_marking() -> None:
    rule = rule_from_json("dscp_marking", {"dscp_mark": 26})
    assert rule == DscpMarkingRule(dscp_mark=26)
    assert rule.direction is Direction.EGRESS
    assert rule_from_json("dscp_marking", {"dscp_mark": "46"}) == DscpMarkingRule(dscp_mark=46)


def test_minimum_bandwidth_defaults() -> None:
    rule = rule_from_json("minimum_bandwidth", {"min_kbps": 1000})
    assert isinstance(rule, MinimumBandwidthRule)
    assert rule.min_rate_bits_per_s == 1_000_000
    assert rule.direction is Direction.EGRESS


def test_packet_rate_limit_defaults_and_units() -> None:
    rule = rule_from_json("packet_rate_limit", {"max_kpps": 2})
    assert isinstance(rule, PacketRateLimitRule)
    assert rule.max_rate_packets_per_s == 2000
    assert rule.max_burst_packets == 0
    assert rule.direction is Direction.EGRESS
    rule = rule_from_json(
        "packet_rate_limit", {"max_kpps": 2, "max_burst_kpps": 3, "direction": "ingress"}
    )
    assert isinstance(rule, PacketRateLimitRule)
    assert rule.max_burst_packets == 3000
    assert rule.direction is Direction.INGRESS


def test_minimum_packet_rate_defaults_and_any() -> None:
    rule = rule_from_json("minimum_packet_rate", {"min_kpps": 5})
    assert isinstance(rule, MinimumPacketRateRule)
    assert rule.min_rate_packets_per_s == 5000
    assert rule.direction is Direction.EGRESS
    assert mpr("any").direction is Direction.ANY


@pytest.mark.parametrize(("rule_type", "field"), sorted(REQUIRED.items()))
@pytest.mark.parametrize("missing", ["absent", "null"])
def test_required_field(rule_type: str, field: str, missing: str) -> None:
    body: dict[str, Any] = {} if missing == "absent" else {field: None}
    with pytest.raises(InvalidInput, match=rf"^rule\.{field}: required") as info:
        rule_from_json(rule_type, body)
    assert info.value.key == f"rule.{field}"
    assert "required" in str(info.value)


def test_required_field_uses_the_callers_key() -> None:
    with pytest.raises(InvalidInput) as info:
        rule_from_json("bandwidth_limit", {}, key="qos_policy.rules[3]")
    assert info.value.key == "qos_policy.rules[3].max_kbps"


@pytest.mark.parametrize(("rule_type", "field"), INT_FIELDS)
@pytest.mark.parametrize("value", [0, 1, INT_MAX, "2147483647"])
def test_int_fields_accept_the_range(rule_type: str, field: str, value: object) -> None:
    body = body_for(rule_type, **{field: value})
    rule = rule_from_json(rule_type, body)
    assert rule_to_json(rule)[field] == int(str(value))


@pytest.mark.parametrize(("rule_type", "field"), INT_FIELDS)
@pytest.mark.parametrize("value", [-1, INT_MAX + 1, 2**63, "-5"])
def test_int_fields_refuse_out_of_range(rule_type: str, field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=r"an integer from 0 to 2147483647") as info:
        rule_from_json(rule_type, body_for(rule_type, **{field: value}))
    assert info.value.key == f"rule.{field}"


@pytest.mark.parametrize(("rule_type", "field"), INT_FIELDS)
@pytest.mark.parametrize("value", ["fast", "1.5", True, [1]])
def test_int_fields_refuse_non_integers(rule_type: str, field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=r"not an integer") as info:
        rule_from_json(rule_type, body_for(rule_type, **{field: value}))
    assert info.value.key == f"rule.{field}"


@SETTINGS
@given(st.sampled_from(INT_FIELDS), st.integers(min_value=-(2**40), max_value=2**40))
def test_int_fields_accepted_iff_in_range(spec: tuple[str, str], value: int) -> None:
    rule_type, field = spec
    body = body_for(rule_type, **{field: value})
    if 0 <= value <= INT_MAX:
        assert rule_to_json(rule_from_json(rule_type, body))[field] == value
    else:
        with pytest.raises(InvalidInput) as info:
            rule_from_json(rule_type, body)
        assert info.value.key == f"rule.{field}"


def test_the_22_dscp_marks() -> None:
    assert len(UPSTREAM_DSCP) == 22
    assert VALID_DSCP_MARKS == UPSTREAM_DSCP


@given(st.integers(min_value=0, max_value=63))
def test_dscp_accepted_iff_valid(mark: int) -> None:
    if mark in UPSTREAM_DSCP:
        rule = rule_from_json("dscp_marking", {"dscp_mark": mark})
        assert isinstance(rule, DscpMarkingRule)
        assert rule.dscp_mark == mark
    else:
        with pytest.raises(InvalidInput) as info:
            rule_from_json("dscp_marking", {"dscp_mark": mark})
        assert info.value.key == "rule.dscp_mark"
        assert info.value.allowed == MARKS_TEXT
        assert MARKS_TEXT in str(info.value)


@pytest.mark.parametrize("mark", [64, 255, 1000])
def test_dscp_above_63_lists_the_marks(mark: int) -> None:
    with pytest.raises(InvalidInput, match=MARKS_TEXT):
        rule_from_json("dscp_marking", {"dscp_mark": mark})


@pytest.mark.parametrize("rule_type", DIRECTIONAL)
@pytest.mark.parametrize("direction", ["egress", "ingress"])
def test_directions_accepted(rule_type: str, direction: str) -> None:
    rule = rule_from_json(rule_type, body_for(rule_type, direction=direction))
    assert rule.direction is Direction(direction)
    assert rule_to_json(rule)["direction"] == direction


@pytest.mark.parametrize("rule_type", ["bandwidth_limit", "minimum_bandwidth", "packet_rate_limit"])
def test_any_refused_except_for_minimum_packet_rate(rule_type: str) -> None:
    with pytest.raises(InvalidInput, match=r"one of egress, ingress$") as info:
        rule_from_json(rule_type, body_for(rule_type, direction="any"))
    assert info.value.key == "rule.direction"
    assert info.value.value == "any"


@pytest.mark.parametrize("rule_type", DIRECTIONAL)
@pytest.mark.parametrize("direction", ["EGRESS", "out", "", None, 1])
def test_bad_directions_refused(rule_type: str, direction: object) -> None:
    with pytest.raises(InvalidInput, match=r"one of .*egress, ingress") as info:
        rule_from_json(rule_type, body_for(rule_type, direction=direction))
    assert info.value.key == "rule.direction"


def test_minimum_packet_rate_lists_any() -> None:
    with pytest.raises(InvalidInput, match=r"one of any, egress, ingress"):
        rule_from_json("minimum_packet_rate", {"min_kpps": 1, "direction": "both"})


@pytest.mark.parametrize(
    ("rule_type", "field"),
    [
        ("bandwidth_limit", "min_kbps"),
        ("bandwidth_limit", "max_burst_kpps"),
        ("bandwidth_limit", "colour"),
        ("dscp_marking", "direction"),  # DSCP rules have no direction
        ("minimum_bandwidth", "max_kbps"),
        ("packet_rate_limit", "max_kbps"),
        ("minimum_packet_rate", "min_kbps"),
    ],
)
def test_unknown_fields_refused(rule_type: str, field: str) -> None:
    with pytest.raises(InvalidInput, match=r"unrecognized attribute") as info:
        rule_from_json(rule_type, body_for(rule_type, **{field: "egress"}))
    assert info.value.key == f"rule.{field}"
    assert rule_type in info.value.allowed


@pytest.mark.parametrize(
    "field", ["type", "id", "name", "qos_policy_id", "tenant_id", "project_id"]
)
def test_policy_level_fields_ignored(field: str) -> None:
    rule = rule_from_json("bandwidth_limit", {"max_kbps": 1, field: "x"})
    assert isinstance(rule, BandwidthLimitRule)


@pytest.mark.parametrize("rule_type", ["bw_limit", "", "BANDWIDTH_LIMIT"])
def test_unknown_rule_type_refused(rule_type: str) -> None:
    with pytest.raises(InvalidInput, match=r"one of bandwidth_limit, dscp_marking") as info:
        rule_from_json(rule_type, {"max_kbps": 1})
    assert info.value.key == "rule.type"


# --- rule_to_json round trip ------------------------------------------------------------

neutron_int = st.integers(min_value=0, max_value=INT_MAX)
two_way = st.sampled_from(["egress", "ingress"])


@st.composite
def rule_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    rule_type = draw(st.sampled_from(sorted(REQUIRED)))
    body: dict[str, Any] = {"id": draw(st.text(max_size=8))}
    if rule_type == "bandwidth_limit":
        body |= {"max_kbps": draw(neutron_int), "max_burst_kbps": draw(neutron_int)}
        body["direction"] = draw(two_way)
    elif rule_type == "dscp_marking":
        body["dscp_mark"] = draw(st.sampled_from(sorted(UPSTREAM_DSCP)))
    elif rule_type == "minimum_bandwidth":
        body |= {"min_kbps": draw(neutron_int), "direction": draw(two_way)}
    elif rule_type == "packet_rate_limit":
        body |= {"max_kpps": draw(neutron_int), "max_burst_kpps": draw(neutron_int)}
        body["direction"] = draw(two_way)
    else:
        body["min_kpps"] = draw(neutron_int)
        body["direction"] = draw(st.sampled_from(["any", "egress", "ingress"]))
    return rule_type, body


@SETTINGS
@given(rule_bodies())
def test_rule_json_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    rule_type, body = case
    rule = rule_from_json(rule_type, body)
    out = rule_to_json(rule)
    assert out == {**body, "type": rule_type}
    assert rule_from_json(out["type"], out) == rule


# --- validate_rules / check_rule_fits ---------------------------------------------------


@pytest.mark.parametrize("rule_type", DIRECTIONAL)
@pytest.mark.parametrize("direction", ["egress", "ingress"])
def test_duplicate_type_and_direction_conflicts(rule_type: str, direction: str) -> None:
    first = rule_from_json(rule_type, body_for(rule_type, direction=direction))
    second = rule_from_json(rule_type, body_for(rule_type, direction=direction))
    with pytest.raises(Conflict, match=rf"a {rule_type} rule with direction {direction}") as info:
        validate_rules([first, second])
    assert info.value.key == "rules[1]"
    assert "already exists" in str(info.value)


@pytest.mark.parametrize("rule_type", DIRECTIONAL)
def test_same_type_other_direction_is_fine(rule_type: str) -> None:
    rules = [
        rule_from_json(rule_type, body_for(rule_type, direction="egress")),
        rule_from_json(rule_type, body_for(rule_type, direction="ingress")),
    ]
    assert validate_rules(rules) == tuple(rules)


def test_two_dscp_rules_conflict() -> None:
    rules = [DscpMarkingRule(dscp_mark=26), DscpMarkingRule(dscp_mark=46)]
    with pytest.raises(Conflict, match=r"a dscp_marking rule already exists") as info:
        validate_rules(rules, key="pol.rules")
    assert info.value.key == "pol.rules[1]"


def test_all_five_types_together() -> None:
    rules = [
        bw(1000),
        bw(2000, Direction.INGRESS),
        DscpMarkingRule(dscp_mark=26),
        minbw(500),
        minbw(500, Direction.INGRESS),
        rule_from_json("packet_rate_limit", {"max_kpps": 1}),
        mpr("ingress"),
        mpr("egress"),
    ]
    assert validate_rules(rules) == tuple(rules)


def test_max_below_min_same_direction_conflicts() -> None:
    # qos_policy_validator.check_bandwidth_rule_conflict -> QoSRuleParameterConflict
    with pytest.raises(Conflict, match=r"max_kbps 100 .*min_kbps 200") as info:
        validate_rules([minbw(200), bw(100)])
    assert info.value.key == "rules[1]"
    assert "egress" in str(info.value)


def test_min_above_max_same_direction_conflicts() -> None:
    with pytest.raises(Conflict, match=r"min_kbps 200 .*max_kbps 100") as info:
        validate_rules([bw(100, Direction.INGRESS), minbw(200, Direction.INGRESS)])
    assert info.value.key == "rules[1]"
    assert "ingress" in str(info.value)


def test_max_equal_to_min_is_fine() -> None:
    assert len(validate_rules([minbw(100), bw(100)])) == 2
    assert len(validate_rules([bw(100), minbw(100)])) == 2


def test_min_max_in_different_directions_is_fine() -> None:
    # Newer neutron skips rules of another direction ("Rule check must be done within the
    # same direction").
    assert len(validate_rules([minbw(200, Direction.INGRESS), bw(100)])) == 2
    assert len(validate_rules([bw(100, Direction.INGRESS), minbw(200)])) == 2


@SETTINGS
@given(neutron_int, neutron_int, two_way, two_way, st.booleans())
def test_bandwidth_conflict_property(
    max_kbps: int, min_kbps: int, max_dir: str, min_dir: str, max_first: bool
) -> None:
    limit = bw(max_kbps, Direction(max_dir))
    minimum = minbw(min_kbps, Direction(min_dir))
    rules = [limit, minimum] if max_first else [minimum, limit]
    if max_dir == min_dir and max_kbps < min_kbps:
        with pytest.raises(Conflict) as info:
            validate_rules(rules)
        assert f"max_kbps {max_kbps}" in str(info.value)
        assert f"min_kbps {min_kbps}" in str(info.value)
    else:
        assert validate_rules(rules) == tuple(rules)


@pytest.mark.parametrize(("first", "second"), [("any", "egress"), ("ingress", "any")])
def test_minimum_packet_rate_any_with_directional_conflicts(first: str, second: str) -> None:
    with pytest.raises(Conflict, match=r"direction any cannot be combined") as info:
        validate_rules([mpr(first), mpr(second)])
    assert info.value.key == "rules[1]"


def test_minimum_packet_rate_any_twice_is_a_duplicate() -> None:
    with pytest.raises(Conflict, match=r"with direction any already exists"):
        validate_rules([mpr("any"), mpr("any")])


def test_check_rule_fits_directly() -> None:
    check_rule_fits([bw(100)], bw(100, Direction.INGRESS))
    check_rule_fits([DscpMarkingRule(dscp_mark=26)], bw(1))
    with pytest.raises(Conflict) as info:
        check_rule_fits([bw(100)], bw(5), key="new")
    assert info.value.key == "new"


def test_policy_from_json_validates_the_whole_policy() -> None:
    policy = policy_from_json(
        {
            "name": "gold",
            "tags": ["a"],
            "rules": [
                {"type": "bandwidth_limit", "max_kbps": 3000, "max_burst_kbps": 300},
                {"type": "dscp_marking", "dscp_mark": 26},
            ],
        }
    )
    assert policy.name == "gold"
    assert policy.tags == ("a",)
    assert [r.type_name for r in policy.rules] == ["bandwidth_limit", "dscp_marking"]
    with pytest.raises(Conflict) as conflict:
        policy_from_json(
            {
                "rules": [
                    {"type": "minimum_bandwidth", "min_kbps": 200},
                    {"type": "bandwidth_limit", "max_kbps": 100},
                ]
            }
        )
    assert conflict.value.key == "qos_policy.rules[1]"
    with pytest.raises(InvalidInput) as invalid:
        policy_from_json({"rules": [{"type": "dscp_marking", "dscp_mark": 1}]})
    assert invalid.value.key == "qos_policy.rules[0].dscp_mark"


# --- effective_policy -------------------------------------------------------------------

PORT_POLICY = QosPolicy(name="port", rules=(DscpMarkingRule(dscp_mark=26),))
NET_POLICY = QosPolicy(name="net", rules=(DscpMarkingRule(dscp_mark=46),))


@pytest.mark.parametrize(
    "owner",
    [
        "compute:nova",
        "compute:az1",
        "",
        "network:dhcp",
        "neutron:LOADBALANCERV2",
        "network:router_interface",
        "network:router_gateway",
    ],
)
def test_port_policy_always_wins(owner: str) -> None:
    # should_apply_to_port: is_port_policy -> True whatever the owner; rules not merged.
    assert effective_policy(PORT_POLICY, NET_POLICY, owner) == (PORT_POLICY, "port")
    assert effective_policy(PORT_POLICY, None, owner) == (PORT_POLICY, "port")


@pytest.mark.parametrize("owner", ["compute:nova", "compute:az1", "", "baremetal:none"])
def test_network_policy_applies_to_instance_ports(owner: str) -> None:
    assert effective_policy(None, NET_POLICY, owner) == (NET_POLICY, "network")


@pytest.mark.parametrize(
    "owner",
    [
        "network:dhcp",
        "network:router_interface",
        "network:router_interface_distributed",
        "network:router_centralized_snat",
        "network:router_ha_interface",
        "network:floatingip",
        "network:distributed",
        "neutron:LOADBALANCERV2",
        "neutron:port",
    ],
)
def test_network_policy_skipped_for_network_owned_ports(owner: str) -> None:
    # DEVICE_OWNER_PREFIXES = ('network:', 'neutron:')
    assert effective_policy(None, NET_POLICY, owner) == (None, "")


@pytest.mark.parametrize("owner", ["network:router_gateway", "network:floatingip_agent_gateway"])
def test_network_policy_applies_to_router_gateways(owner: str) -> None:
    # NOTE(miouge) in QosRule.should_apply_to_port: DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_AGENT_GW.
    assert effective_policy(None, NET_POLICY, owner) == (NET_POLICY, "network")


def test_no_policy_at_all() -> None:
    assert effective_policy(None, None, "compute:nova") == (None, "")
    assert effective_policy(None, None, "network:router_gateway") == (None, "")


@pytest.mark.parametrize(
    "owner", ["network:router_gateway_ha", "network:floatingip_agent_gateway:x"]
)
def test_gateway_exception_is_a_prefix_match(owner: str) -> None:
    assert effective_policy(None, NET_POLICY, owner) == (NET_POLICY, "network")


def test_the_rule_table_describes_each_model_rule_type_once() -> None:
    """openstack/neutron.py's RULE_TABLE is the one description of the five rule types:
    the model's list, the API's field lists and the store's columns all come from it."""
    from dataclasses import fields

    from qosplane.model.network_qos import RULE_TYPES
    from qosplane.openstack.neutron import RULE_TABLE
    from qosplane.store.tables import QosRuleRow

    assert tuple(RULE_TABLE) == RULE_TYPES
    columns = set(QosRuleRow.__table__.columns.keys())
    for name, kind in RULE_TABLE.items():
        assert kind.model.__dataclass_fields__["type_name"].default == name
        model_fields = {f.name for f in fields(kind.model)} - {"id", "type_name", "direction"}
        assert {w.model for w in kind.fields} == model_fields
        assert model_fields <= columns
