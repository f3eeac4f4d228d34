"""Neutron core's plan-affecting operations: a port's or a network's QoS policy binding."""

from __future__ import annotations

from sqlalchemy.orm import Session

from qosplane.service.plans import NetworkChanged, PortChanged, Replanner
from qosplane.store.networks import NetworkRepository
from qosplane.store.tables import NetworkRow, PortRow


class NeutronService:
    def __init__(self, session: Session) -> None:
        self.networks = NetworkRepository(session)
        self.plans = Replanner(session)

    def set_port_policy(
        self, port_id: str, qos_policy_id: str | None, if_revision: int | None
    ) -> PortRow:
        with self.plans.changing(PortChanged(port_id)):
            return self.networks.set_port_policy(port_id, qos_policy_id, if_revision)

    def set_network_policy(
        self, network_id: str, qos_policy_id: str | None, if_revision: int | None
    ) -> NetworkRow:
        """Every port on the network without a policy of its own inherits this one."""
        with self.plans.changing(NetworkChanged(network_id)):
            return self.networks.set_network_policy(network_id, qos_policy_id, if_revision)
