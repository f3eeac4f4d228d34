"""Neutron core's plan-affecting operations: a port's or a network's QoS policy binding."""

from __future__ import annotations

from sqlalchemy.orm import Session

from qosplane.service.plans import NetworkChanged, PortChanged, Replanner
from qosplane.store.networks import NetworkRepository, NeutronChanges
from qosplane.store.tables import NetworkRow, PortRow


class NeutronService:
    def __init__(self, session: Session) -> None:
        self.networks = NetworkRepository(session)
        self.plans = Replanner(session)

    def update_port(
        self, port_id: str, changes: NeutronChanges, if_revision: int | None
    ) -> PortRow:
        """A new policy recompiles the port's server; a new name alone changes no plan."""
        if not changes.rebinds:
            return self.networks.update_port(port_id, changes, if_revision)
        with self.plans.changing(PortChanged(port_id)):
            return self.networks.update_port(port_id, changes, if_revision)

    def update_network(
        self, network_id: str, changes: NeutronChanges, if_revision: int | None
    ) -> NetworkRow:
        """Every port on the network without a policy of its own inherits a new policy."""
        if not changes.rebinds:
            return self.networks.update_network(network_id, changes, if_revision)
        with self.plans.changing(NetworkChanged(network_id)):
            return self.networks.update_network(network_id, changes, if_revision)
