"""A port's Placement resource request, as Neutron shows it to admins
(port-resource-request-groups; neutron/services/qos/qos_plugin.py
_extend_port_resource_request, neutron_lib/placement/utils.py)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.testclient import TestClient

from qosplane.model.network_qos import (
    BandwidthLimitRule,
    Direction,
    MinimumBandwidthRule,
    MinimumPacketRateRule,
    QosPolicy,
)
from qosplane.model.units import Bits, BitsPerSecond, PacketsPerSecond
from qosplane.openstack.placement import physnet_trait, resource_request, vnic_type_trait
from tests.test_api import member_token, token

NET = "/networking/v2.0"
PORT = "0c4a9c37-5b7e-4d0c-8f5e-2d1b1b2f9e01"


def _policy(*rules: Any) -> QosPolicy:
    return QosPolicy(id="pol", name="p", rules=tuple(rules))


def test_traits_are_normalized_as_os_traits_does() -> None:
    assert physnet_trait("physnet-1.a") == "CUSTOM_PHYSNET_PHYSNET_1_A"
    assert vnic_type_trait("normal") == "CUSTOM_VNIC_TYPE_NORMAL"


def test_one_group_per_kind_of_guarantee_with_stable_ids() -> None:
    bw_e = MinimumBandwidthRule(BitsPerSecond(1_000_000), Direction.EGRESS, id="r1")
    bw_i = MinimumBandwidthRule(BitsPerSecond(2_000_000), Direction.INGRESS, id="r2")
    pps = MinimumPacketRateRule(PacketsPerSecond(3000), Direction.ANY, id="r3")
    limit = BandwidthLimitRule(BitsPerSecond(5_000_000), Bits(0), id="r4")
    got = resource_request(PORT, _policy(bw_e, bw_i, pps, limit), "physnet1")
    assert got is not None
    bandwidth, packets = got["request_groups"]
    # resource_request_group_uuid: uuid5 in the port's namespace of the joined rule ids.
    assert bandwidth["id"] == str(uuid.uuid5(uuid.UUID(PORT), "r1:r2"))
    assert packets["id"] == str(uuid.uuid5(uuid.UUID(PORT), "r3"))
    assert bandwidth["required"] == ["CUSTOM_PHYSNET_PHYSNET1", "CUSTOM_VNIC_TYPE_NORMAL"]
    assert bandwidth["resources"] == {
        "NET_BW_EGR_KILOBIT_PER_SEC": 1000,
        "NET_BW_IGR_KILOBIT_PER_SEC": 2000,
    }
    assert packets == {
        "id": packets["id"],
        "required": ["CUSTOM_VNIC_TYPE_NORMAL"],
        "resources": {"NET_PACKET_RATE_KILOPACKET_PER_SEC": 3},
    }
    assert got["same_subtree"] == [bandwidth["id"], packets["id"]]
    # A tunnelled network has no physnet: Neutron's tunnel trait instead.
    tunnel = resource_request(PORT, _policy(bw_e), "")
    assert tunnel is not None
    assert tunnel["request_groups"][0]["required"][0] == "CUSTOM_NETWORK_TUNNEL_PROVIDER"
    # Nothing guaranteed, nothing requested.
    assert resource_request(PORT, _policy(limit), "physnet1") is None
    assert resource_request(PORT, None, "physnet1") is None


def test_admins_see_a_ports_resource_request_and_members_do_not(client: TestClient) -> None:
    admin = token(client)
    net = client.post(
        f"{NET}/networks",
        headers=admin,
        json={
            "network": {
                "name": "prov",
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 100,
                "shared": True,
            }
        },
    )
    assert net.status_code == 201, net.text
    net_id = net.json()["network"]["id"]
    policy = client.post(
        f"{NET}/qos/policies", headers=admin, json={"policy": {"name": "gold", "shared": True}}
    ).json()["policy"]["id"]
    rule = client.post(
        f"{NET}/qos/policies/{policy}/minimum_bandwidth_rules",
        headers=admin,
        json={"minimum_bandwidth_rule": {"min_kbps": 1000, "direction": "egress"}},
    )
    assert rule.status_code == 201, rule.text
    member = member_token(client, "rr-project")
    port = client.post(
        f"{NET}/ports",
        headers=member,
        json={"port": {"network_id": net_id, "qos_policy_id": policy}},
    )
    assert port.status_code == 201, port.text
    port_id = port.json()["port"]["id"]
    assert "resource_request" not in port.json()["port"]
    shown = client.get(f"{NET}/ports/{port_id}", headers=admin).json()["port"]
    (group,) = shown["resource_request"]["request_groups"]
    assert group["id"] == str(
        uuid.uuid5(uuid.UUID(port_id), rule.json()["minimum_bandwidth_rule"]["id"])
    )
    assert group["resources"] == {"NET_BW_EGR_KILOBIT_PER_SEC": 1000}
    assert group["required"] == ["CUSTOM_PHYSNET_PHYSNET1", "CUSTOM_VNIC_TYPE_NORMAL"]
    assert (
        "resource_request"
        not in client.get(f"{NET}/ports/{port_id}", headers=member).json()["port"]
    )
    aliases = {
        e["alias"] for e in client.get(f"{NET}/extensions", headers=member).json()["extensions"]
    }
    assert {"port-resource-request", "port-resource-request-groups"} <= aliases
