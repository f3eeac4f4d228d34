"""Servers and their compiled plans.

A server row holds its last compiled plan and the plan's revision. What a plan depends on and
when it is recompiled is the service layer's business (`service/plans.py`); this module only
reads the inputs (`instance`) and stores the result (`store_plan`).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from qosplane.model.instance import Instance, Port, Volume
from qosplane.model.plan import AttachedVolume, HostPlan, WiredAddress, WiredPort
from qosplane.model.report import Measurements, ReportStatus, ServerReport, Verdict
from qosplane.store.database import fetch
from qosplane.store.flavors import FlavorRepository
from qosplane.store.hosts import HostRepository
from qosplane.store.networks import NetworkRepository
from qosplane.store.qos_policies import QosPolicyRepository
from qosplane.store.tables import ServerRow
from qosplane.store.views import ServerView
from qosplane.store.volumes import VolumeRepository


@lru_cache(maxsize=4096)
def _parsed_plan(plan_json: str) -> HostPlan:
    """Plans are read far more often than compiled (every watch reads the volumes' drive
    targets): keyed by the stored text itself, so a recompiled plan is never served stale."""
    return HostPlan.from_json(json.loads(plan_json))


class ServerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.networks = NetworkRepository(session)

    def create(
        self,
        *,
        name: str,
        project_id: str,
        user_id: str,
        flavor_id: str,
        image_id: str,
        key_name: str | None,
        availability_zone: str,
        host: str,
        networks: list[str],
        security_groups: list[str],
        nics: list[tuple[str, str]] | None = None,
    ) -> ServerRow:
        """`networks`: a new port on each. `nics`, when given, replaces it and keeps Nova's
        NIC order: ("network", id) makes a port there, ("port", id) binds an existing
        unbound port, which the server's deletion unbinds and keeps."""
        FlavorRepository(self.session).get(flavor_id)
        number = (self.session.scalar(select(func.max(ServerRow.number))) or 0) + 1
        server_id = str(uuid.uuid4())
        owner = f"compute:{availability_zone}"
        port_ids = []
        for kind, ref in nics if nics is not None else [("network", n) for n in networks]:
            if kind == "port":
                port_ids.append(self.networks.bind_port(ref, server_id, owner, host).id)
                continue
            port = self.networks.create_port(
                ref,
                project_id,
                device_id=server_id,
                device_owner=owner,
                host=host,
                security_groups=security_groups,
            )
            port_ids.append(port.id)
        row = ServerRow(
            id=server_id,
            number=number,
            name=name,
            project_id=project_id,
            user_id=user_id,
            flavor_id=flavor_id,
            image_id=image_id,
            key_name=key_name,
            availability_zone=availability_zone,
            host=host,
            status="BUILD",
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            admin_pass=secrets.token_urlsafe(9),
            plan_json="",
            plan_revision=0,
            port_ids=json.dumps(port_ids),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, server_id: str) -> ServerRow:
        return fetch(self.session, ServerRow, server_id, "Server")

    def find(self, name: str | None = None, project_id: str | None = None) -> list[ServerRow]:
        query = select(ServerRow).order_by(ServerRow.number)
        if name is not None:
            query = query.where(ServerRow.name == name)
        if project_id is not None:
            query = query.where(ServerRow.project_id == project_id)
        return list(self.session.scalars(query))

    def delete(self, server_id: str) -> None:
        row = self.get(server_id)
        for volume in VolumeRepository(self.session).attached_to(server_id):
            volume.server_id = None
            volume.status = "available"
            volume.attachment_id = None
        for port in self.networks.ports(device_id=server_id):
            self.networks.release_port(port.id)
        HostRepository(self.session).bump(row.host)  # the agent tears the instance down
        self.session.delete(row)

    def port_ids(self, row: ServerView) -> list[str]:
        ids: list[str] = json.loads(row.port_ids)
        return ids

    def instance(self, row: ServerRow) -> Instance:
        policies = QosPolicyRepository(self.session)
        ports = []
        for port_id in self.port_ids(row):
            port = self.networks.port(port_id)
            net = self.networks.network(port.network_id)
            ports.append(
                Port(
                    id=port.id,
                    mac=port.mac_address,
                    network_id=net.id,
                    network_name=net.name,
                    ip_addresses=tuple(ip.ip_address for ip in self.networks.fixed_ips(port.id)),
                    device_owner=port.device_owner,
                    network_type=net.network_type,
                    physical_network=net.physical_network,
                    mtu_bytes=net.mtu,
                    qos_policy=policies.get(port.qos_policy_id) if port.qos_policy_id else None,
                    network_qos_policy=policies.get(net.qos_policy_id)
                    if net.qos_policy_id
                    else None,
                )
            )
        volumes_repo = VolumeRepository(self.session)
        volumes = tuple(
            Volume(id=v.id, size_gb=v.size_gb, qos=volumes_repo.qos_of(v), name=v.name)
            for v in volumes_repo.attached_to(row.id)
        )
        return Instance(
            volumes=volumes,
            uuid=row.id,
            name=f"instance-{row.number:08x}",
            flavor=FlavorRepository(self.session).get(row.flavor_id),
            display_name=row.name,
            ports=tuple(ports),
            image_id=row.image_id,
            project_id=row.project_id,
            user_id=row.user_id,
            creation_time=row.created_at,
        )

    def store_plan(self, row: ServerRow, plan: HostPlan) -> None:
        """Keep a newly compiled plan; its revision counts the recompilations so agents can
        tell a new plan from an old one. Compiling is the service layer's (service/plans.py)."""
        self.session.execute(
            update(ServerRow)
            .where(ServerRow.id == row.id)
            .values(
                plan_json=json.dumps(plan.to_json()),
                # Counted by the database: two API processes recompiling the same server
                # get two revisions, so an agent never mistakes the newer plan for one it has.
                plan_revision=ServerRow.plan_revision + 1,
            )
            .execution_options(synchronize_session=False)
        )
        self.session.refresh(row)

    @staticmethod
    def plan_of(row: ServerRow) -> HostPlan:
        return _parsed_plan(row.plan_json)

    @staticmethod
    def plan_wire(row: ServerRow) -> dict[str, Any]:
        """The plan exactly as stored, for the watch: it goes from the database to the wire
        unread, so a host's whole desired state is not parsed and rendered again."""
        plan: dict[str, Any] = json.loads(row.plan_json)
        return plan

    def wiring(self, row: ServerRow) -> list[WiredPort]:
        """What a host needs to plug the server's ports in: per port (NIC order) its tap,
        MAC, network, MTU and addresses with their prefix length and the subnet gateway."""
        out = []
        for port_id in self.port_ids(row):
            port = self.networks.port(port_id)
            net = self.networks.network(port.network_id)
            addresses = []
            for ip in self.networks.fixed_ips(port.id):
                subnet = self.networks.subnet(ip.subnet_id)
                prefix = subnet.cidr.split("/")[1]
                gateway = f"{subnet.gateway_ip}/{prefix}" if subnet.gateway_ip else None
                addresses.append(WiredAddress(f"{ip.ip_address}/{prefix}", gateway))
            out.append(
                WiredPort(
                    port.id,
                    ("tap" + port.id)[:14],
                    port.mac_address,
                    net.id,
                    net.mtu,
                    tuple(addresses),
                )
            )
        return out

    def volume_wiring(self, row: ServerRow) -> list[AttachedVolume]:
        """The attached volumes as a host exports them: id, size and the guest's target
        (volumes follow the image disks, in attach order)."""
        volumes = VolumeRepository(self.session).attached_to(row.id)
        if not volumes:
            return []
        targets = list(self.plan_of(row).qemu_drives)[-len(volumes) :]
        return [
            AttachedVolume(v.id, target, v.size_gb)
            for v, target in zip(volumes, targets, strict=True)
        ]

    def record_report(self, row: ServerRow, report: ServerReport) -> None:
        """Keep the agent's report; a failed apply puts the server in ERROR, as a failed
        spawn does in Nova, and a later successful one brings it back to ACTIVE."""
        row.agent_report = json.dumps(report.to_json(), sort_keys=True)
        if report.plan_revision == row.plan_revision:
            row.status = "ERROR" if report.status is ReportStatus.FAILED else "ACTIVE"

    def record_measurements(self, row: ServerRow, verdicts: Sequence[Verdict]) -> None:
        """Keep the last `verify` of the server, stamped now, for explain."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        row.measurements = json.dumps(Measurements(stamp, tuple(verdicts)).to_json())

    @staticmethod
    def report(row: ServerView) -> ServerReport | None:
        """The agent's last report on the server; None before its first."""
        stored = json.loads(row.agent_report or "{}")
        return ServerReport.from_json(stored) if stored else None

    @staticmethod
    def measurements(row: ServerView) -> Measurements | None:
        stored = json.loads(row.measurements or "{}")
        return Measurements.from_json(stored) if stored else None

    def plan(self, server_id: str) -> HostPlan:
        return self.plan_of(self.get(server_id))
