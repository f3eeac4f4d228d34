"""Inert records: images, keypairs, security groups. qosplane keeps them so the seed's
commands work; nothing compiles from them.

Each record has an owner: the project for images and security groups, the user for
keypairs (Nova's keypairs belong to users). A repository opened with `owner` sees that
owner's records, plus public and community images as Glance shows them; without an owner
(admin) it sees everything. Someone else's visible image can be read, not changed (403).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, Forbidden, NotFound
from qosplane.store.tables import RecordRow

KINDS = {"image": "Image", "keypair": "Keypair", "security_group": "Security group"}
SHARED_IMAGE_VISIBILITY = ("public", "community")


class RecordRepository:
    def __init__(self, session: Session, kind: str, owner: str | None = None) -> None:
        assert kind in KINDS
        self.session = session
        self.kind = kind
        self.owner = owner

    def _visible(self, row: RecordRow) -> bool:
        if self.owner is None or row.project_id == self.owner:
            return True
        return (
            self.kind == "image"
            and json.loads(row.body).get("visibility") in SHARED_IMAGE_VISIBILITY
        )

    def _rows(self, name: str | None = None) -> list[RecordRow]:
        query = select(RecordRow).where(RecordRow.kind == self.kind).order_by(RecordRow.pk)
        if name is not None:
            query = query.where(RecordRow.name == name)
        return [r for r in self.session.scalars(query) if self._visible(r)]

    def _row(self, record_id: str) -> RecordRow:
        row = self.session.scalar(
            select(RecordRow).where(RecordRow.kind == self.kind, RecordRow.id == record_id)
        )
        if row is None or not self._visible(row):
            raise NotFound(KINDS[self.kind], record_id)
        return row

    def _writable(self, row: RecordRow) -> RecordRow:
        if self.owner is not None and row.project_id != self.owner:
            raise Forbidden(f"You are not permitted to modify {KINDS[self.kind].lower()} {row.id}")
        return row

    def create(
        self,
        record_id: str,
        name: str,
        owner: str,
        body: dict[str, Any],
        unique_name: bool = False,
    ) -> dict[str, Any]:
        """`unique_name`: one record of this name per owner (keypairs)."""
        if unique_name and any(r.project_id == owner for r in self._rows(name)):
            raise Conflict("name", f"{KINDS[self.kind]} {name} already exists")
        self.session.add(
            RecordRow(
                kind=self.kind,
                id=record_id,
                name=name,
                project_id=owner,
                body=json.dumps(body),
            )
        )
        self.session.flush()
        return body

    def get(self, record_id: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self._row(record_id).body)
        return body

    def find(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self._rows(name)]

    def named(self, name: str) -> dict[str, Any]:
        """The caller's one record called `name` (keypairs are addressed by name)."""
        rows = [r for r in self._rows(name) if self.owner is None or r.project_id == self.owner]
        if not rows:
            raise NotFound(KINDS[self.kind], name)
        body: dict[str, Any] = json.loads(rows[0].body)
        return body

    def list(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self._rows()]

    def update(self, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = self._writable(self._row(record_id))
        row.body = json.dumps(body)
        self.session.flush()
        return body

    def delete(self, record_id: str) -> None:
        self.session.delete(self._writable(self._row(record_id)))
