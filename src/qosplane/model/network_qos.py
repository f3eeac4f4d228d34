"""Neutron QoS: policies and the five rule types, guest-relative, in canonical units.

Semantics from neutron-lib and neutron (see docs/units.md): directions are from the
instance's point of view (egress = leaving it); one rule per type and direction (DSCP: one
per policy); a bandwidth limit below a minimum in the same direction is a conflict; a
port's policy replaces its network's, which does not apply to network:* / neutron:* ports
except router gateways.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from qosplane.model.errors import Conflict, InvalidInput
from qosplane.model.units import (
    Bits,
    BitsPerSecond,
    Packets,
    PacketsPerSecond,
    bits_per_s_to_kilobits_per_s,
)


class Direction(enum.Enum):
    EGRESS = "egress"  # from the instance
    INGRESS = "ingress"  # to the instance
    ANY = "any"  # minimum_packet_rate only


# neutron_lib/constants.py VALID_DSCP_MARKS
VALID_DSCP_MARKS: frozenset[int] = frozenset(
    {0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 44, 46, 48, 56}
)
# neutron_lib/api/definitions/qos.py: rates and bursts are [0, 2**31 - 1]
NEUTRON_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class BandwidthLimitRule:
    max_rate_bits_per_s: BitsPerSecond
    max_burst_bits: Bits  # 0 = the back end's default
    direction: Direction = Direction.EGRESS
    id: str = ""
    type_name: str = "bandwidth_limit"


@dataclass(frozen=True, slots=True)
class DscpMarkingRule:
    dscp_mark: int
    id: str = ""
    type_name: str = "dscp_marking"

    @property
    def direction(self) -> Direction:
        return Direction.EGRESS


@dataclass(frozen=True, slots=True)
class MinimumBandwidthRule:
    min_rate_bits_per_s: BitsPerSecond
    direction: Direction = Direction.EGRESS
    id: str = ""
    type_name: str = "minimum_bandwidth"


@dataclass(frozen=True, slots=True)
class PacketRateLimitRule:
    max_rate_packets_per_s: PacketsPerSecond
    max_burst_packets: Packets
    direction: Direction = Direction.EGRESS
    id: str = ""
    type_name: str = "packet_rate_limit"


@dataclass(frozen=True, slots=True)
class MinimumPacketRateRule:
    min_rate_packets_per_s: PacketsPerSecond
    direction: Direction = Direction.EGRESS
    id: str = ""
    type_name: str = "minimum_packet_rate"


Rule = (
    BandwidthLimitRule
    | DscpMarkingRule
    | MinimumBandwidthRule
    | PacketRateLimitRule
    | MinimumPacketRateRule
)

RULE_TYPES = (
    "bandwidth_limit",
    "dscp_marking",
    "minimum_bandwidth",
    "packet_rate_limit",
    "minimum_packet_rate",
)


@dataclass(frozen=True, slots=True)
class QosPolicy:
    name: str = ""
    id: str = ""
    description: str = ""
    shared: bool = False
    is_default: bool = False
    project_id: str = ""
    tags: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = field(default_factory=tuple)


def validate_dscp_mark(key: str, mark: int) -> int:
    if mark not in VALID_DSCP_MARKS:
        raise InvalidInput(
            key, mark, "one of " + ", ".join(str(m) for m in sorted(VALID_DSCP_MARKS))
        )
    return mark


def check_rule_fits(existing: Sequence[Rule], new: Rule, key: str = "rule") -> None:
    """Neutron's checks when `new` joins a policy holding `existing`.

    neutron/objects/qos/rule.py:QosRule.duplicates -> QoSRulesConflict;
    neutron/objects/qos/qos_policy_validator.py -> QoSRuleParameterConflict and the
    minimum_packet_rate any-vs-directional check.
    """
    for rule in existing:
        if rule.type_name != new.type_name:
            continue
        if isinstance(new, DscpMarkingRule) or rule.direction == new.direction:
            raise Conflict(
                key,
                f"a {new.type_name} rule"
                + (
                    ""
                    if isinstance(new, DscpMarkingRule)
                    else f" with direction {new.direction.value}"
                )
                + " already exists in this policy; allowed: one per type"
                + ("" if isinstance(new, DscpMarkingRule) else " and direction"),
            )
        if isinstance(new, MinimumPacketRateRule) and Direction.ANY in (
            rule.direction,
            new.direction,
        ):
            raise Conflict(
                key,
                "minimum_packet_rate with direction any cannot be combined with a directional "
                "minimum_packet_rate rule in the same policy",
            )
    for rule in existing:
        if rule.direction != new.direction:
            continue
        if isinstance(new, BandwidthLimitRule) and isinstance(rule, MinimumBandwidthRule):
            if new.max_rate_bits_per_s < rule.min_rate_bits_per_s:
                raise Conflict(
                    key,
                    f"max_kbps {bits_per_s_to_kilobits_per_s(new.max_rate_bits_per_s)} is below the policy's "
                    f"min_kbps {bits_per_s_to_kilobits_per_s(rule.min_rate_bits_per_s)} for direction "
                    f"{new.direction.value}; allowed: max_kbps >= min_kbps",
                )
        if isinstance(new, MinimumBandwidthRule) and isinstance(rule, BandwidthLimitRule):
            if new.min_rate_bits_per_s > rule.max_rate_bits_per_s:
                raise Conflict(
                    key,
                    f"min_kbps {bits_per_s_to_kilobits_per_s(new.min_rate_bits_per_s)} is above the policy's "
                    f"max_kbps {bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)} for direction "
                    f"{new.direction.value}; allowed: min_kbps <= max_kbps",
                )


def validate_rules(rules: Sequence[Rule], key: str = "rules") -> tuple[Rule, ...]:
    """All rules of one policy, checked pairwise as if created one by one."""
    accepted: list[Rule] = []
    for index, rule in enumerate(rules):
        check_rule_fits(accepted, rule, f"{key}[{index}]")
        accepted.append(rule)
    return tuple(accepted)


# device_owner prefixes whose ports do not inherit a network policy (neutron
# QosRule.should_apply_to_port), and the two exceptions.
_NETWORK_OWNED_PREFIXES = ("network:", "neutron:")
_NETWORK_POLICY_EXCEPTIONS = ("network:router_gateway", "network:floatingip_agent_gateway")


def effective_policy(
    port_policy: QosPolicy | None, network_policy: QosPolicy | None, device_owner: str
) -> tuple[QosPolicy | None, str]:
    """The policy that applies to a port and where it came from ('port', 'network' or '').

    A port policy replaces the network's (rules are not merged).
    """
    if port_policy is not None:
        return port_policy, "port"
    if network_policy is None:
        return None, ""
    # Neutron tests the exceptions with startswith too (QosRule.should_apply_to_port).
    if device_owner.startswith(_NETWORK_OWNED_PREFIXES) and not device_owner.startswith(
        _NETWORK_POLICY_EXCEPTIONS
    ):
        return None, ""
    return network_policy, "network"
