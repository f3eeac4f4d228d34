"""Nova's plan-affecting operations: flavor extra specs, servers, volume attachments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy.orm import Session

from qosplane.model.flavor import Flavor
from qosplane.service.plans import FlavorChanged, Replanner, VolumeChanged
from qosplane.store.flavors import FlavorRepository
from qosplane.store.hosts import HostRepository
from qosplane.store.servers import ServerRepository
from qosplane.store.tables import ServerRow, VolumeRow
from qosplane.store.volumes import VolumeRepository

# Plan errors after which libvirt refuses to start the guest.
FATAL_PLAN_ERRORS = frozenset(
    {
        "cpu_shares_above_cgroup_v2_max",
        "cpu_shares_out_of_range",
        "cpu_period_out_of_range",
        "cpu_quota_out_of_range",
    }
)


class NovaService:
    def __init__(self, session: Session) -> None:
        self.flavors = FlavorRepository(session)
        self.servers = ServerRepository(session)
        self.volumes = VolumeRepository(session)
        self.plans = Replanner(session)

    def set_extra_specs(self, flavor_id: str, specs: Mapping[str, object]) -> Flavor:
        with self.plans.changing(FlavorChanged(flavor_id)):
            return self.flavors.set_extra_specs(flavor_id, specs)

    def unset_extra_specs(self, flavor_id: str, keys: Iterable[str]) -> Flavor:
        with self.plans.changing(FlavorChanged(flavor_id)):
            return self.flavors.unset_extra_specs(flavor_id, keys)

    def create_server(
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
        security_groups: list[str],
        nics: list[tuple[str, str]],
    ) -> ServerRow:
        """The server, its ports, and its first plan, in one transaction. It starts in ERROR
        when libvirt would refuse its plan, in BUILD on a host whose agent will apply it
        (ACTIVE or ERROR once the agent reports), else ACTIVE: a host without an agent only
        stores plans."""
        row = self.servers.create(
            name=name,
            project_id=project_id,
            user_id=user_id,
            flavor_id=flavor_id,
            image_id=image_id,
            key_name=key_name,
            availability_zone=availability_zone,
            host=host,
            networks=[],
            security_groups=security_groups,
            nics=nics,
        )
        self.plans.recompile({row.id})
        errors = {e.code for e in self.servers.plan(row.id).errors}
        if errors & FATAL_PLAN_ERRORS:
            row.status = "ERROR"
        elif HostRepository(self.servers.session).has_live_agent(row.host):
            row.status = "BUILD"
        else:
            row.status = "ACTIVE"
        return row

    def attach_volume(self, volume_id: str, server_id: str) -> VolumeRow:
        with self.plans.changing(VolumeChanged(volume_id)):
            return self.volumes.attach(volume_id, server_id)

    def detach_volume(self, volume_id: str, server_id: str) -> VolumeRow:
        with self.plans.changing(VolumeChanged(volume_id)):
            return self.volumes.detach(volume_id, server_id)
