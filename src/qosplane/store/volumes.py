"""Cinder QoS specs, volume types and volumes, with Cinder's association rules.

Front-end specs are checked when written (integers, no total+read/write mix), not only at
attach time as Cinder does: a spec that would break every attach is refused up front.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, InvalidInput, NotFound
from qosplane.model.volume_qos import VolumeQos
from qosplane.openstack.cinder import (
    check_front_end_specs,
    parse_consumer,
    validate_specs,
    volume_qos,
)
from qosplane.store.database import fetch
from qosplane.store.tables import (
    QosSpecRow,
    VolumeRow,
    VolumeTypeEncryptionRow,
    VolumeTypeExtraSpecRow,
    VolumeTypeRow,
)
from qosplane.store.views import QosSpecView


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000")


def _check(consumer: str, specs: Mapping[str, str]) -> None:
    if parse_consumer(consumer).reaches_host:
        check_front_end_specs(specs)


class VolumeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- QoS specs ----------------------------------------------------------------------

    def create_spec(
        self, name: str, consumer: str | None, specs: Mapping[str, object]
    ) -> QosSpecRow:
        checked = validate_specs(specs)
        kind = parse_consumer(consumer).value
        _check(kind, checked)
        if self.session.scalar(select(QosSpecRow.id).where(QosSpecRow.name == name)):
            raise Conflict("name", f"QoS Specs {name} already exists.")
        row = QosSpecRow(id=str(uuid.uuid4()), name=name, consumer=kind, specs=json.dumps(checked))
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            raise Conflict("name", f"QoS Specs {name} already exists.") from None
        return row

    def spec(self, spec_id: str) -> QosSpecRow:
        return fetch(self.session, QosSpecRow, spec_id, "QoS spec")

    def specs_of(self, row: QosSpecView) -> dict[str, str]:
        data: dict[str, str] = json.loads(row.specs)
        return data

    def specs(self) -> list[QosSpecRow]:
        return list(self.session.scalars(select(QosSpecRow).order_by(QosSpecRow.name)))

    def set_keys(self, spec_id: str, values: Mapping[str, object]) -> dict[str, str]:
        row = self.spec(spec_id)
        updates = dict(values)
        if "consumer" in updates:
            row.consumer = parse_consumer(updates.pop("consumer")).value
        checked = validate_specs(updates)
        merged = {**self.specs_of(row), **checked}
        _check(row.consumer, merged)
        row.specs = json.dumps(merged)
        self.session.flush()
        return checked

    def delete_keys(self, spec_id: str, keys: list[str]) -> None:
        row = self.spec(spec_id)
        current = self.specs_of(row)
        for key in keys:
            if key not in current:
                raise NotFound("QoS spec key", key)
            del current[key]
        row.specs = json.dumps(current)
        self.session.flush()

    def delete_spec(self, spec_id: str, force: bool) -> None:
        row = self.spec(spec_id)
        types = self.associations(spec_id)
        if types and not force:
            raise InvalidInput(
                "qos_specs",
                spec_id,
                "a spec with no associations, or force=True",
                "QoS Specs still in use",
            )
        for vtype in types:
            vtype.qos_specs_id = None
        self.session.flush()
        self.session.delete(row)

    def associations(self, spec_id: str) -> list[VolumeTypeRow]:
        return list(
            self.session.scalars(select(VolumeTypeRow).where(VolumeTypeRow.qos_specs_id == spec_id))
        )

    def associate(self, spec_id: str, type_id: str) -> None:
        self.spec(spec_id)
        vtype = self.volume_type(type_id)
        if vtype.qos_specs_id not in (None, spec_id):
            raise InvalidInput(
                "vol_type_id",
                type_id,
                "a volume type without QoS specs",
                f"Type {type_id} is already associated with another qos specs: "
                f"{vtype.qos_specs_id}",
            )
        vtype.qos_specs_id = spec_id
        self.session.flush()

    def disassociate(self, spec_id: str, type_id: str | None) -> None:
        self.spec(spec_id)
        types = [self.volume_type(type_id)] if type_id else self.associations(spec_id)
        for vtype in types:
            if vtype.qos_specs_id == spec_id:
                vtype.qos_specs_id = None
        self.session.flush()

    # --- volume types -------------------------------------------------------------------

    def create_type(self, name: str, description: str | None, is_public: bool) -> VolumeTypeRow:
        if self.session.scalar(select(VolumeTypeRow.id).where(VolumeTypeRow.name == name)):
            raise Conflict("name", f"Volume Type {name} already exists.")
        row = VolumeTypeRow(
            id=str(uuid.uuid4()),
            name=name,
            description=description,
            is_public=is_public,
            qos_specs_id=None,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def volume_type(self, type_id: str) -> VolumeTypeRow:
        return fetch(self.session, VolumeTypeRow, type_id, "Volume type")

    def update_type(
        self, type_id: str, name: str | None, description: str | None, is_public: bool | None
    ) -> VolumeTypeRow:
        row = self.volume_type(type_id)
        if name is not None and name != row.name:
            taken = self.session.scalar(select(VolumeTypeRow.id).where(VolumeTypeRow.name == name))
            if taken is not None:
                raise Conflict("name", f"Volume Type {name} already exists.")
            row.name = name
        if description is not None:
            row.description = description
        if is_public is not None:
            row.is_public = is_public
        self.session.flush()
        return row

    def delete_type(self, type_id: str) -> None:
        """Refused while a volume has the type (cinder/volume/volume_types.py destroy:
        VolumeTypeInUse, 400)."""
        row = self.volume_type(type_id)
        in_use = self.session.scalar(
            select(VolumeRow.id).where(VolumeRow.volume_type_id == type_id).limit(1)
        )
        if in_use is not None:
            raise InvalidInput(
                "volume_type",
                type_id,
                "a type no volume has",
                "Target volume type is still in use.",
            )
        self.session.execute(
            delete(VolumeTypeExtraSpecRow).where(VolumeTypeExtraSpecRow.volume_type_id == type_id)
        )
        self.session.delete(row)
        self.session.flush()

    def type_extra_specs(self, type_id: str) -> dict[str, str]:
        self.volume_type(type_id)
        rows = self.session.scalars(
            select(VolumeTypeExtraSpecRow)
            .where(VolumeTypeExtraSpecRow.volume_type_id == type_id)
            .order_by(VolumeTypeExtraSpecRow.key)
        )
        return {r.key: r.value for r in rows}

    def set_type_extra_specs(self, type_id: str, specs: dict[str, str]) -> dict[str, str]:
        self.volume_type(type_id)
        for key, value in specs.items():
            row = self.session.get(VolumeTypeExtraSpecRow, (type_id, key))
            if row is None:
                self.session.add(
                    VolumeTypeExtraSpecRow(volume_type_id=type_id, key=key, value=value)
                )
            else:
                row.value = value
        self.session.flush()
        return self.type_extra_specs(type_id)

    def delete_type_extra_spec(self, type_id: str, key: str) -> None:
        self.volume_type(type_id)
        row = self.session.get(VolumeTypeExtraSpecRow, (type_id, key))
        if row is None:
            raise NotFound("Volume Type extra spec", key)
        self.session.delete(row)
        self.session.flush()

    # --- encryption (cinder/api/contrib/volume_type_encryption.py) ---------------------

    def _type_unused(self, type_id: str, verb: str) -> None:
        """Encryption specs do not change under volumes that have the type (400)."""
        in_use = self.session.scalar(
            select(VolumeRow.id).where(VolumeRow.volume_type_id == type_id).limit(1)
        )
        if in_use is not None:
            raise InvalidInput(
                "volume_type",
                type_id,
                "a type no volume has",
                f"Cannot {verb} encryption specs. Volume type in use.",
            )

    def encryption(self, type_id: str) -> VolumeTypeEncryptionRow | None:
        self.volume_type(type_id)
        return self.session.get(VolumeTypeEncryptionRow, type_id)

    def create_encryption(
        self,
        type_id: str,
        provider: str,
        control_location: str,
        cipher: str | None,
        key_size_bits: int | None,
    ) -> VolumeTypeEncryptionRow:
        if self.encryption(type_id) is not None:
            raise InvalidInput(
                "encryption",
                type_id,
                "a type without encryption specs",
                f"Volume type encryption for type {type_id} already exists.",
            )
        self._type_unused(type_id, "create")
        row = VolumeTypeEncryptionRow(
            volume_type_id=type_id,
            encryption_id=str(uuid.uuid4()),
            provider=provider,
            cipher=cipher,
            key_size_bits=key_size_bits,
            control_location=control_location,
            created_at=_now(),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def update_encryption(
        self, type_id: str, encryption_id: str, changes: dict[str, object]
    ) -> VolumeTypeEncryptionRow:
        """`changes` by column name (provider, cipher, key_size_bits, control_location)."""
        row = self._encryption_by_id(type_id, encryption_id)
        self._type_unused(type_id, "update")
        for column, value in changes.items():
            setattr(row, column, value)
        row.updated_at = _now()
        self.session.flush()
        return row

    def delete_encryption(self, type_id: str, encryption_id: str) -> None:
        row = self._encryption_by_id(type_id, encryption_id)
        self._type_unused(type_id, "delete")
        self.session.delete(row)
        self.session.flush()

    def _encryption_by_id(self, type_id: str, encryption_id: str) -> VolumeTypeEncryptionRow:
        """The type's specs. Cinder's update and delete ignore the id in the path
        (clients send a spec name there, python-cinderclient `/encryption/provider`)."""
        row = self.encryption(type_id)
        if row is None:
            raise NotFound("Volume type encryption", f"{encryption_id} of type {type_id}")
        return row

    def volume_types(self) -> list[VolumeTypeRow]:
        return list(self.session.scalars(select(VolumeTypeRow).order_by(VolumeTypeRow.name)))

    def type_by_name_or_id(self, ref: str) -> VolumeTypeRow:
        row = self.session.get(VolumeTypeRow, ref) or self.session.scalar(
            select(VolumeTypeRow).where(VolumeTypeRow.name == ref)
        )
        if row is None:
            raise NotFound("Volume type", ref)
        return row

    # --- volumes ------------------------------------------------------------------------

    def create_volume(
        self, name: str, size_gb: int, type_ref: str | None, project_id: str, user_id: str
    ) -> VolumeRow:
        type_id = None
        if type_ref:
            try:
                type_id = self.type_by_name_or_id(type_ref).id
            except NotFound:
                raise InvalidInput(
                    "volume.volume_type", type_ref, "the name or id of an existing volume type"
                ) from None
        row = VolumeRow(
            id=str(uuid.uuid4()),
            name=name,
            project_id=project_id,
            user_id=user_id,
            size_gb=size_gb,
            volume_type_id=type_id,
            status="available",
            created_at=_now(),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def volume(self, volume_id: str) -> VolumeRow:
        return fetch(self.session, VolumeRow, volume_id, "Volume")

    def volumes(self, name: str | None = None) -> list[VolumeRow]:
        query = select(VolumeRow).order_by(VolumeRow.created_at, VolumeRow.id)
        if name is not None:
            query = query.where(VolumeRow.name == name)
        return list(self.session.scalars(query))

    def extend(self, volume_id: str, new_size_gb: int) -> VolumeRow:
        """cinder/volume/api.py extend: only larger (InvalidInput, 400); available or, since
        3.42, in-use volumes."""
        row = self.volume(volume_id)
        if row.status not in ("available", "in-use"):
            raise InvalidInput(
                "os-extend", volume_id, "an available or in-use volume", f"volume is {row.status}"
            )
        if new_size_gb <= row.size_gb:
            raise InvalidInput(
                "os-extend.new_size",
                new_size_gb,
                f"more than the current size ({row.size_gb} GB)",
                "New size for extend must be greater than current size.",
            )
        row.size_gb = new_size_gb
        self.session.flush()
        return row

    def retype(self, volume_id: str, type_ref: str) -> VolumeRow:
        """cinder/volume/api.py retype: to an existing, different type (400 otherwise)."""
        row = self.volume(volume_id)
        if row.status not in ("available", "in-use"):
            raise InvalidInput(
                "os-retype", volume_id, "an available or in-use volume", f"volume is {row.status}"
            )
        try:
            new = self.type_by_name_or_id(type_ref)
        except NotFound:
            raise InvalidInput(
                "os-retype.new_type", type_ref, "the name or id of an existing volume type"
            ) from None
        if new.id == row.volume_type_id:
            raise InvalidInput(
                "os-retype.new_type",
                type_ref,
                "a type other than the volume's",
                "New volume type must be different",
            )
        row.volume_type_id = new.id
        self.session.flush()
        return row

    def attach(self, volume_id: str, server_id: str) -> VolumeRow:
        row = self.volume(volume_id)
        if row.status != "available":
            raise InvalidInput(
                "volumeId", volume_id, "an available volume", f"volume {volume_id} is {row.status}"
            )
        row.status = "in-use"
        row.server_id = server_id
        row.attachment_id = str(uuid.uuid4())
        row.attached_at = _now()
        self.session.flush()
        return row

    def detach(self, volume_id: str, server_id: str) -> VolumeRow:
        row = self.volume(volume_id)
        if row.server_id != server_id:
            raise NotFound("Volume attachment", f"of volume {volume_id} to server {server_id}")
        row.status = "available"
        row.server_id = None
        row.attachment_id = None
        row.attached_at = None
        self.session.flush()
        return row

    def delete_volume(self, volume_id: str) -> None:
        row = self.volume(volume_id)
        if row.status == "in-use":
            raise InvalidInput(
                "volume",
                volume_id,
                "a volume that is not attached",
                "Invalid volume: Volume status must be available or error or error_restoring "
                "or error_extending or error_managing and must not be migrating, attached, "
                "belong to a group, have snapshots, awaiting a transfer, or be disassociated "
                "from snapshots after volume transfer",
            )
        self.session.delete(row)

    def attached_to(self, server_id: str) -> list[VolumeRow]:
        return list(
            self.session.scalars(
                select(VolumeRow)
                .where(VolumeRow.server_id == server_id)
                .order_by(VolumeRow.attached_at, VolumeRow.id)
            )
        )

    def qos_of(self, row: VolumeRow) -> VolumeQos:
        """What reaches the hypervisor for this volume at attach time (Cinder's per-GB)."""
        if row.volume_type_id is None:
            return volume_qos(parse_consumer(None), {}, row.size_gb)
        vtype = self.volume_type(row.volume_type_id)
        if vtype.qos_specs_id is None:
            return volume_qos(parse_consumer(None), {}, row.size_gb)
        spec = self.spec(vtype.qos_specs_id)
        return volume_qos(
            parse_consumer(spec.consumer), self.specs_of(spec), row.size_gb, spec.name
        )

    def server_ids_for_spec(self, spec_id: str) -> set[str]:
        type_ids = [t.id for t in self.associations(spec_id)]
        if not type_ids:
            return set()
        rows = self.session.scalars(
            select(VolumeRow.server_id).where(
                VolumeRow.volume_type_id.in_(type_ids), VolumeRow.server_id.is_not(None)
            )
        )
        return {r for r in rows if r}
