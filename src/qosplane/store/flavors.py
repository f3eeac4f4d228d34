"""Flavors and their extra specs, as model Flavors. Extra specs are validated with Nova's
rules (openstack.nova) before anything is written, so a refused spec changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, NotFound
from qosplane.model.flavor import Flavor
from qosplane.openstack.nova import make_flavor, validate_extra_specs
from qosplane.store.database import fetch, upsert
from qosplane.store.tables import FlavorAccessRow, FlavorExtraSpecRow, FlavorRow, ServerRow


def _to_model(row: FlavorRow, specs: Mapping[str, str]) -> Flavor:
    return make_flavor(
        name=row.name,
        vcpus=row.vcpus,
        ram_mb=row.ram_mb,
        disk_gb=row.disk_gb,
        extra_specs=specs,
        ephemeral_gb=row.ephemeral_gb,
        swap_mb=row.swap_mb,
        flavor_id=row.id,
        strict=False,
    )


class FlavorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, flavor: Flavor, is_public: bool = True, description: str | None = None
    ) -> Flavor:
        row = FlavorRow(
            description=description,
            id=flavor.id or str(uuid.uuid4()),
            name=flavor.name,
            vcpus=flavor.vcpus,
            ram_mb=flavor.ram_mb,
            disk_gb=flavor.disk_gb,
            ephemeral_gb=flavor.ephemeral_gb,
            swap_mb=flavor.swap_mb,
            is_public=is_public,
        )
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            raise Conflict("name", f"a flavor named {flavor.name!r} already exists") from None
        self._write_specs(row.id, flavor.extra_specs)
        return self.get(row.id)

    def _row(self, flavor_id: str) -> FlavorRow:
        return fetch(self.session, FlavorRow, flavor_id, "flavor")

    def _specs(self, flavor_id: str) -> dict[str, str]:
        rows = self.session.scalars(
            select(FlavorExtraSpecRow).where(FlavorExtraSpecRow.flavor_id == flavor_id)
        )
        return {r.key: r.value for r in rows}

    def get(self, flavor_id: str) -> Flavor:
        return _to_model(self._row(flavor_id), self._specs(flavor_id))

    def description(self, flavor_id: str) -> str | None:
        return self._row(flavor_id).description

    def describe(self, flavor_id: str, description: str | None) -> None:
        self._row(flavor_id).description = description
        self.session.flush()

    def is_public(self, flavor_id: str) -> bool:
        return self._row(flavor_id).is_public

    def projects_with_access(self, flavor_id: str) -> list[str]:
        return list(
            self.session.scalars(
                select(FlavorAccessRow.project_id)
                .where(FlavorAccessRow.flavor_id == flavor_id)
                .order_by(FlavorAccessRow.project_id)
            )
        )

    def can_use(self, flavor_id: str, project_id: str | None) -> bool:
        """Public flavors are everyone's; a private one is the admin's (None) and the
        projects it was shared with."""
        if self._row(flavor_id).is_public or project_id is None:
            return True
        return project_id in self.projects_with_access(flavor_id)

    def add_access(self, flavor_id: str, project_id: str) -> None:
        if self._row(flavor_id).is_public:
            raise Conflict("addTenantAccess", "Can not add access to a public flavor.")
        if project_id in self.projects_with_access(flavor_id):
            raise Conflict(
                "addTenantAccess",
                f"Flavor access already exists for flavor {flavor_id} and project "
                f"{project_id} combination.",
            )
        self.session.add(FlavorAccessRow(flavor_id=flavor_id, project_id=project_id))
        self.session.flush()

    def remove_access(self, flavor_id: str, project_id: str) -> None:
        self._row(flavor_id)
        if project_id not in self.projects_with_access(flavor_id):
            raise NotFound("Flavor access", f"for flavor {flavor_id} and project {project_id}")
        self.session.execute(
            delete(FlavorAccessRow).where(
                FlavorAccessRow.flavor_id == flavor_id, FlavorAccessRow.project_id == project_id
            )
        )

    def find_by_name(self, name: str) -> Flavor:
        row = self.session.scalar(select(FlavorRow).where(FlavorRow.name == name))
        if row is None:
            raise NotFound("flavor", name)
        return _to_model(row, self._specs(row.id))

    def list(self) -> list[Flavor]:
        rows = self.session.scalars(select(FlavorRow).order_by(FlavorRow.name))
        return [_to_model(row, self._specs(row.id)) for row in rows]

    def set_extra_specs(
        self, flavor_id: str, specs: Mapping[str, object], strict: bool = True
    ) -> Flavor:
        self._row(flavor_id)
        checked = validate_extra_specs(specs, strict)
        # The merged set must still make a valid flavor (e.g. no total+read disk limits).
        merged = {**self._specs(flavor_id), **checked}
        _to_model(self._row(flavor_id), merged)
        self._write_specs(flavor_id, checked)
        return self.get(flavor_id)

    def unset_extra_specs(self, flavor_id: str, keys: Iterable[str]) -> Flavor:
        self._row(flavor_id)
        present = self._specs(flavor_id)
        for key in keys:
            if key not in present:
                raise NotFound("flavor extra spec", key)
            gone = self.session.execute(
                delete(FlavorExtraSpecRow).where(
                    FlavorExtraSpecRow.flavor_id == flavor_id, FlavorExtraSpecRow.key == key
                )
            )
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                # Another API process deleted it since it was read: Nova's answer for a key
                # that is not there, not a 500 from a stale ORM row.
                raise NotFound("flavor extra spec", key)
        return self.get(flavor_id)

    def delete(self, flavor_id: str) -> None:
        """Refused while servers use the flavor. Nova allows it (instances keep a copy), but
        here a server's plan is recompiled from its flavor, so it must outlive them."""
        row = self._row(flavor_id)
        users = list(
            self.session.scalars(select(ServerRow.name).where(ServerRow.flavor_id == flavor_id))
        )
        if users:
            raise Conflict(
                "flavor", f"flavor {flavor_id} is used by servers {', '.join(sorted(users))}"
            )
        self.session.delete(row)

    def _write_specs(self, flavor_id: str, specs: Mapping[str, str]) -> None:
        """One upsert per key (INSERT ... ON CONFLICT DO UPDATE, on SQLite and PostgreSQL):
        an ORM merge reads first, so two processes writing or deleting the same key could
        both insert (IntegrityError) or update a deleted row (StaleDataError)."""
        for key, value in specs.items():
            upsert(
                self.session,
                FlavorExtraSpecRow,
                {"flavor_id": flavor_id, "key": key, "value": value},
                ("flavor_id", "key"),
            )
