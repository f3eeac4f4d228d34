"""Cinder's plan-affecting operations: QoS spec keys and their volume-type associations, and
a volume's size and type.

A spec reaches a server through the types of its attached volumes, so a disassociation or a
deletion must recompile the servers the spec shaped before the change (plans.changing).
Extending or retyping an attached volume recompiles its server too: per-GB values follow
the new size and the new type's spec reaches the running guest, where Cinder and Nova keep
what was computed at attach time (the README says so)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from qosplane.service.plans import QosSpecChanged, Replanner, VolumeChanged
from qosplane.store.volumes import VolumeRepository


class CinderService:
    def __init__(self, session: Session) -> None:
        self.volumes = VolumeRepository(session)
        self.plans = Replanner(session)

    def set_keys(self, spec_id: str, values: Mapping[str, object]) -> dict[str, str]:
        with self.plans.changing(QosSpecChanged(spec_id)):
            return self.volumes.set_keys(spec_id, values)

    def delete_keys(self, spec_id: str, keys: list[str]) -> None:
        with self.plans.changing(QosSpecChanged(spec_id)):
            self.volumes.delete_keys(spec_id, keys)

    def delete_spec(self, spec_id: str, force: bool) -> None:
        with self.plans.changing(QosSpecChanged(spec_id)):
            self.volumes.delete_spec(spec_id, force)

    def associate(self, spec_id: str, type_id: str) -> None:
        with self.plans.changing(QosSpecChanged(spec_id)):
            self.volumes.associate(spec_id, type_id)

    def disassociate(self, spec_id: str, type_id: str | None) -> None:
        with self.plans.changing(QosSpecChanged(spec_id)):
            self.volumes.disassociate(spec_id, type_id)

    def extend(self, volume_id: str, new_size_gb: int) -> None:
        with self.plans.changing(VolumeChanged(volume_id)):
            self.volumes.extend(volume_id, new_size_gb)

    def retype(self, volume_id: str, type_ref: str) -> None:
        with self.plans.changing(VolumeChanged(volume_id)):
            self.volumes.retype(volume_id, type_ref)
