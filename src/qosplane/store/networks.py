"""Networks, subnets and ports, with IP allocation from a subnet's pool and QoS bindings.

A QoS policy bound to a port or a network cannot be deleted (Neutron QosPolicyInUse); the
check lives here, next to the bindings.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, InvalidInput, NotFound, RevisionMismatch
from qosplane.store.database import fetch
from qosplane.store.tables import NetworkRow, PortIpRow, PortRow, QosPolicyRow, SubnetRow

BoundRow = TypeVar("BoundRow", NetworkRow, PortRow)


@dataclass(frozen=True, slots=True)
class FixedIp:
    subnet_id: str
    ip_address: str


def parse_cidr(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidInput(
            "subnet.cidr", cidr, "a network address with prefix, e.g. 10.0.0.0/24", str(exc)
        ) from None


@dataclass(frozen=True, slots=True)
class NeutronChanges:
    """The fields of one network or port update that qosplane keeps: a new name, and
    (`rebinds`) a new QoS policy, None to unbind; without `rebinds` the policy stays."""

    name: str | None = None
    rebinds: bool = False
    qos_policy_id: str | None = None


class NetworkRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- networks ---------------------------------------------------------------------

    def create_network(
        self,
        name: str,
        project_id: str,
        shared: bool = False,
        qos_policy_id: str | None = None,
        mtu: int = 1500,
        network_type: str = "",
        physical_network: str = "",
    ) -> NetworkRow:
        if qos_policy_id is not None:
            self._policy_exists(qos_policy_id)
        row = NetworkRow(
            id=str(uuid.uuid4()),
            name=name,
            project_id=project_id,
            shared=shared,
            mtu=mtu,
            network_type=network_type,
            physical_network=physical_network,
            qos_policy_id=qos_policy_id,
            revision_number=0,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def network(self, network_id: str) -> NetworkRow:
        return fetch(self.session, NetworkRow, network_id, "Network")

    def networks(self, name: str | None = None) -> list[NetworkRow]:
        query = select(NetworkRow).order_by(NetworkRow.name)
        if name is not None:
            query = query.where(NetworkRow.name == name)
        return list(self.session.scalars(query))

    def update_network(
        self, network_id: str, changes: NeutronChanges, if_revision: int | None = None
    ) -> NetworkRow:
        return self._update(NetworkRow, network_id, "Network", changes, if_revision)

    def delete_network(self, network_id: str) -> None:
        row = self.network(network_id)
        if self.session.scalar(select(PortRow.id).where(PortRow.network_id == network_id)):
            raise Conflict(
                "network",
                f"Unable to complete operation on network {network_id}. "
                "There are one or more ports still in use on the network.",
            )
        self.session.delete(row)

    # --- subnets ----------------------------------------------------------------------

    def create_subnet(
        self,
        network_id: str,
        name: str,
        cidr: str,
        project_id: str,
        gateway_ip: str | None = None,
        pool: tuple[str, str] | None = None,
    ) -> SubnetRow:
        self.network(network_id)
        net = parse_cidr(cidr)
        hosts = list(net.hosts()) if net.num_addresses <= 65536 else None
        if hosts is not None and len(hosts) < 2:
            raise InvalidInput("subnet.cidr", cidr, "a prefix with at least two host addresses")
        first = net.network_address + 1
        gateway = gateway_ip if gateway_ip is not None else str(first)
        if gateway and ipaddress.ip_address(gateway) not in net:
            raise InvalidInput("subnet.gateway_ip", gateway, f"an address inside {cidr}")
        if pool is None:
            start = first + 1 if gateway == str(first) else first
            end = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
            pool = (str(start), str(end))
        for label, address in zip(("start", "end"), pool, strict=True):
            try:
                inside = ipaddress.ip_address(address) in net
            except ValueError:
                inside = False
            if not inside:
                raise InvalidInput(
                    f"subnet.allocation_pools.{label}", address, f"an address inside {cidr}"
                )
        row = SubnetRow(
            id=str(uuid.uuid4()),
            network_id=network_id,
            name=name,
            project_id=project_id,
            cidr=str(net),
            ip_version=net.version,
            gateway_ip=gateway or None,
            pool_start=pool[0],
            pool_end=pool[1],
        )
        self.session.add(row)
        self.session.flush()
        return row

    def subnets(self, network_id: str | None = None) -> list[SubnetRow]:
        query = select(SubnetRow).order_by(SubnetRow.name, SubnetRow.id)
        if network_id is not None:
            query = query.where(SubnetRow.network_id == network_id)
        return list(self.session.scalars(query))

    def subnet(self, subnet_id: str) -> SubnetRow:
        return fetch(self.session, SubnetRow, subnet_id, "Subnet")

    def _allocate(self, subnet: SubnetRow) -> str:
        used = set(
            self.session.scalars(
                select(PortIpRow.ip_address).where(PortIpRow.subnet_id == subnet.id)
            )
        )
        # Integers: both ends are of the subnet's IP version (checked at subnet create).
        start = int(ipaddress.ip_address(subnet.pool_start))
        end = int(ipaddress.ip_address(subnet.pool_end))
        for number in range(start, end + 1):
            text = str(
                ipaddress.ip_address(number)
                if subnet.ip_version == 4
                else ipaddress.IPv6Address(number)
            )
            if text not in used and text != subnet.gateway_ip:
                return text
        raise Conflict("fixed_ips", f"No more IP addresses available on subnet {subnet.id}.")

    # --- ports ------------------------------------------------------------------------

    def create_port(
        self,
        network_id: str,
        project_id: str,
        device_id: str = "",
        device_owner: str = "",
        host: str = "",
        name: str = "",
        security_groups: list[str] | None = None,
        qos_policy_id: str | None = None,
        preserve_on_delete: bool = False,
    ) -> PortRow:
        self.network(network_id)
        if qos_policy_id is not None:
            self._policy_exists(qos_policy_id)
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        row = PortRow(
            id=str(uuid.uuid4()),
            network_id=network_id,
            name=name,
            project_id=project_id,
            mac_address=mac,
            device_id=device_id,
            device_owner=device_owner,
            binding_host_id=host,
            qos_policy_id=qos_policy_id,
            security_groups=json.dumps(security_groups or []),
            revision_number=0,
            preserve_on_delete=preserve_on_delete,
        )
        self.session.add(row)
        self.session.flush()
        for subnet in self.subnets(network_id):
            if subnet.ip_version == 4 or not self.fixed_ips(row.id):
                self.session.add(
                    PortIpRow(
                        port_id=row.id, subnet_id=subnet.id, ip_address=self._allocate(subnet)
                    )
                )
                self.session.flush()
        return row

    def port(self, port_id: str) -> PortRow:
        return fetch(self.session, PortRow, port_id, "Port")

    def ports(
        self, device_id: str | None = None, name: str | None = None, network_id: str | None = None
    ) -> list[PortRow]:
        query = select(PortRow).order_by(PortRow.id)
        if device_id is not None:
            query = query.where(PortRow.device_id == device_id)
        if name is not None:
            query = query.where(PortRow.name == name)
        if network_id is not None:
            query = query.where(PortRow.network_id == network_id)
        return list(self.session.scalars(query))

    def fixed_ips(self, port_id: str) -> list[FixedIp]:
        rows = self.session.scalars(select(PortIpRow).where(PortIpRow.port_id == port_id))
        return [FixedIp(r.subnet_id, r.ip_address) for r in rows]

    def update_port(
        self, port_id: str, changes: NeutronChanges, if_revision: int | None = None
    ) -> PortRow:
        return self._update(PortRow, port_id, "Port", changes, if_revision)

    def _update(
        self,
        row_type: type[BoundRow],
        key: str,
        kind: str,
        changes: NeutronChanges,
        if_revision: int | None,
    ) -> BoundRow:
        """Apply one Neutron update (name, QoS policy) and bump the revision once, in one
        conditional UPDATE, as Neutron's revision plugin does for every update
        (neutron/services/revisions/revision_plugin.py: If-Match is checked for any
        update, the revision rises by one per update). The database compares and bumps,
        so two If-Match writers holding the same revision cannot both succeed and no
        increment is lost, across API processes too (a row read earlier in this session
        may be stale; the UPDATE does not read it)."""
        values: dict[str, object] = {}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.rebinds:
            if changes.qos_policy_id is not None:
                self._policy_exists(changes.qos_policy_id)
            values["qos_policy_id"] = changes.qos_policy_id
        change = update(row_type).where(row_type.id == key)
        if if_revision is not None:
            change = change.where(row_type.revision_number == if_revision)
        done = self.session.execute(
            change.values(**values, revision_number=row_type.revision_number + 1).execution_options(
                synchronize_session=False
            )
        )
        row = self.session.get(row_type, key, populate_existing=True)
        if row is None:
            raise NotFound(kind, key)
        if done.rowcount != 1 and if_revision is not None:  # type: ignore[attr-defined]
            raise RevisionMismatch(kind.lower(), key, if_revision, row.revision_number)
        return row

    def delete_port(self, port_id: str) -> None:
        self.session.delete(self.port(port_id))

    def bind_port(self, port_id: str, device_id: str, device_owner: str, host: str) -> PortRow:
        """Give an unbound port to a server (Nova's `--port`/`--nic port-id=`). One
        conditional UPDATE, so two servers racing for the port cannot both get it."""
        row = self.port(port_id)
        done = self.session.execute(
            update(PortRow)
            .where(PortRow.id == port_id, PortRow.device_id == "")
            .values(
                device_id=device_id,
                device_owner=device_owner,
                binding_host_id=host,
                revision_number=PortRow.revision_number + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.refresh(row)
            raise Conflict("port", f"Port {port_id} is still in use by {row.device_id}.")
        self.session.refresh(row)
        return row

    def release_port(self, port_id: str) -> None:
        """A server goes: its own ports go with it, ports it was given are unbound."""
        row = self.port(port_id)
        if not row.preserve_on_delete:
            self.session.delete(row)
            return
        self.session.execute(
            update(PortRow)
            .where(PortRow.id == port_id)
            .values(
                device_id="",
                device_owner="",
                binding_host_id="",
                revision_number=PortRow.revision_number + 1,  # counted by the database
            )
            .execution_options(synchronize_session=False)
        )
        self.session.refresh(row)

    # --- QoS bindings -----------------------------------------------------------------

    def _policy_exists(self, policy_id: str) -> None:
        if self.session.get(QosPolicyRow, policy_id) is None:
            raise NotFound("QoS policy", policy_id)

    def check_policy_unused(self, policy_id: str) -> None:
        port = self.session.scalar(select(PortRow.id).where(PortRow.qos_policy_id == policy_id))
        if port is not None:
            raise Conflict("policy", f"QoS Policy {policy_id} is used by port {port}.")
        net = self.session.scalar(
            select(NetworkRow.id).where(NetworkRow.qos_policy_id == policy_id)
        )
        if net is not None:
            raise Conflict("policy", f"QoS Policy {policy_id} is used by network {net}.")

    def bound_elsewhere(self, policy_id: str, project_id: str) -> bool:
        """Whether a port or network of another project than `project_id` carries it."""
        for row_type in (PortRow, NetworkRow):
            query = select(row_type.id).where(
                row_type.qos_policy_id == policy_id, row_type.project_id != project_id
            )
            if self.session.scalar(query) is not None:
                return True
        return False

    def device_ids_using_policy(self, policy_id: str) -> set[str]:
        direct = set(
            self.session.scalars(
                select(PortRow.device_id).where(PortRow.qos_policy_id == policy_id)
            )
        )
        via_net = set(
            self.session.scalars(
                select(PortRow.device_id)
                .join(NetworkRow, PortRow.network_id == NetworkRow.id)
                .where(NetworkRow.qos_policy_id == policy_id)
            )
        )
        return {d for d in direct | via_net if d}
