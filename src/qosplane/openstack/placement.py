"""The Placement resource request Neutron puts on a port whose QoS policy guarantees
something (the port-resource-request-groups format, neutron-lib API definition
port_resource_request_groups): one request group for the minimum bandwidth rules, one for
the minimum packet rate rules, both in one subtree, each with a stable id.

Upstream: neutron/services/qos/qos_plugin.py (_extend_port_resource_request,
_get_min_bw_request_group, _get_min_pps_request_group, _get_min_bw_traits),
neutron_lib/placement/utils.py (physnet_trait, vnic_type_trait,
resource_request_group_uuid), os_traits.normalize_name.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from qosplane.model.network_qos import (
    Direction,
    MinimumBandwidthRule,
    MinimumPacketRateRule,
    QosPolicy,
)
from qosplane.model.units import (
    bits_per_s_to_kilobits_per_s,
    packets_per_s_to_kilopackets_per_s,
)

TRAIT_NETWORK_TUNNEL = "CUSTOM_NETWORK_TUNNEL_PROVIDER"  # neutron/common/constants.py
_BANDWIDTH_CLASS = {
    Direction.EGRESS: "NET_BW_EGR_KILOBIT_PER_SEC",
    Direction.INGRESS: "NET_BW_IGR_KILOBIT_PER_SEC",
}
_PACKET_RATE_CLASS = {
    Direction.EGRESS: "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    Direction.INGRESS: "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
    Direction.ANY: "NET_PACKET_RATE_KILOPACKET_PER_SEC",
}


def custom_trait(name: str) -> str:
    """os_traits.normalize_name: non-alphanumerics become _, upper case, CUSTOM_ first."""
    normal = re.sub("[^0-9A-Za-z]+", "_", name).upper()
    return normal if normal.startswith("CUSTOM_") else "CUSTOM_" + normal


def physnet_trait(physical_network: str) -> str:
    return custom_trait("CUSTOM_PHYSNET_" + physical_network)


def vnic_type_trait(vnic_type: str) -> str:
    return custom_trait("CUSTOM_VNIC_TYPE_" + vnic_type)


def group_id(port_id: str, rule_ids: list[str]) -> str:
    """resource_request_group_uuid: uuid5 in the port's namespace of the rule ids."""
    return str(uuid.uuid5(uuid.UUID(port_id), ":".join(rule_ids)))


def resource_request(
    port_id: str, policy: QosPolicy | None, physical_network: str, vnic_type: str = "normal"
) -> dict[str, Any] | None:
    """The port's `resource_request`, or None when its policy guarantees nothing."""
    if policy is None:
        return None
    bandwidth = [r for r in policy.rules if isinstance(r, MinimumBandwidthRule)]
    packets = [r for r in policy.rules if isinstance(r, MinimumPacketRateRule)]
    groups: list[dict[str, Any]] = []
    if bandwidth:
        net_trait = physnet_trait(physical_network) if physical_network else TRAIT_NETWORK_TUNNEL
        groups.append(
            {
                "id": group_id(port_id, [r.id for r in bandwidth]),
                "required": [net_trait, vnic_type_trait(vnic_type)],
                "resources": {
                    _BANDWIDTH_CLASS[r.direction]: bits_per_s_to_kilobits_per_s(
                        r.min_rate_bits_per_s
                    )
                    for r in bandwidth
                },
            }
        )
    if packets:
        groups.append(
            {
                "id": group_id(port_id, [r.id for r in packets]),
                "required": [vnic_type_trait(vnic_type)],
                "resources": {
                    _PACKET_RATE_CLASS[r.direction]: packets_per_s_to_kilopackets_per_s(
                        r.min_rate_packets_per_s
                    )
                    for r in packets
                },
            }
        )
    if not groups:
        return None
    return {"request_groups": groups, "same_subtree": [g["id"] for g in groups]}
