"""Which data-plane mechanism Neutron's agent uses for a rule on a port: decided once here,
rendered twice (as the ovs-vsctl/ovs-ofctl argv of `plan`, in ovs.py, and as what holds, in
effective.py), so the two can never disagree.

Upstream: neutron/agent/linux/..., neutron/plugins/ml2/drivers/openvswitch/agent/
extension_drivers/qos_driver.py (egress: Interface ingress_policing, or a meter with
[ovs] qos_meter_bandwidth; ingress: a linux-htb queue, or an egress-policer QoS on
vhost-user ports) and the SR-IOV agent's qos_driver.py (egress only, VF max_tx_rate).
"""

from __future__ import annotations

import enum

from qosplane.compiler.upstream.topology import PortWiring
from qosplane.model.host_facts import HostFacts
from qosplane.model.instance import VifType
from qosplane.model.network_qos import BandwidthLimitRule, Direction


class BandwidthPath(enum.Enum):
    SRIOV_VF_RATE = "sriov: VF max_tx_rate"  # egress only
    SRIOV_NO_INGRESS = "sriov: no ingress limit"
    METER = "ovs: OpenFlow meter"  # [ovs] qos_meter_bandwidth, either direction
    INGRESS_POLICING = "ovs: Interface ingress_policing"  # egress, the default
    EGRESS_POLICER = "ovs: QoS egress-policer"  # ingress on vhost-user ports
    LINUX_HTB_QUEUE = "ovs: QoS linux-htb queue"  # ingress, the default


_SRIOV_VIF_TYPES = (VifType.HOSTDEV, VifType.DIRECT)  # a tuple: `in` is two identity checks


def is_sriov(wiring: PortWiring) -> bool:
    return wiring.vif_type in _SRIOV_VIF_TYPES


def bandwidth_path(wiring: PortWiring, rule: BandwidthLimitRule, facts: HostFacts) -> BandwidthPath:
    if wiring.vif_type in _SRIOV_VIF_TYPES:  # is_sriov, inline: asked once per rule
        if rule.direction is Direction.INGRESS:
            return BandwidthPath.SRIOV_NO_INGRESS
        return BandwidthPath.SRIOV_VF_RATE
    if facts.neutron_meter_bandwidth:
        return BandwidthPath.METER
    if rule.direction is Direction.EGRESS:
        return BandwidthPath.INGRESS_POLICING
    if wiring.vif_type is VifType.VHOSTUSER:
        return BandwidthPath.EGRESS_POLICER
    return BandwidthPath.LINUX_HTB_QUEUE
