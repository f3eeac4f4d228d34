"""Inert records: images, keypairs, security groups. qosplane keeps them so the seed's
commands work; nothing compiles from them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, NotFound
from qosplane.store.tables import RecordRow

KINDS = {"image": "Image", "keypair": "Keypair", "security_group": "Security group"}


class RecordRepository:
    def __init__(self, session: Session, kind: str) -> None:
        assert kind in KINDS
        self.session = session
        self.kind = kind

    def create(
        self,
        record_id: str,
        name: str,
        project_id: str,
        body: dict[str, Any],
        unique_name: bool = False,
    ) -> dict[str, Any]:
        if unique_name and self.find(name, project_id):
            raise Conflict("name", f"{KINDS[self.kind]} {name} already exists")
        self.session.add(
            RecordRow(
                kind=self.kind,
                id=record_id,
                name=name,
                project_id=project_id,
                body=json.dumps(body),
            )
        )
        self.session.flush()
        return body

    def get(self, record_id: str) -> dict[str, Any]:
        row = self.session.scalar(
            select(RecordRow).where(RecordRow.kind == self.kind, RecordRow.id == record_id)
        )
        if row is None:
            raise NotFound(KINDS[self.kind], record_id)
        body: dict[str, Any] = json.loads(row.body)
        return body

    def find(self, name: str, project_id: str | None = None) -> list[dict[str, Any]]:
        query = select(RecordRow).where(RecordRow.kind == self.kind, RecordRow.name == name)
        if project_id is not None:
            query = query.where(RecordRow.project_id == project_id)
        return [json.loads(r.body) for r in self.session.scalars(query)]

    def list(self, project_id: str | None = None) -> list[dict[str, Any]]:
        query = select(RecordRow).where(RecordRow.kind == self.kind).order_by(RecordRow.pk)
        if project_id is not None:
            query = query.where(RecordRow.project_id == project_id)
        return [json.loads(r.body) for r in self.session.scalars(query)]

    def update(self, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = self.session.scalar(
            select(RecordRow).where(RecordRow.kind == self.kind, RecordRow.id == record_id)
        )
        if row is None:
            raise NotFound(KINDS[self.kind], record_id)
        row.body = json.dumps(body)
        self.session.flush()
        return body

    def delete(self, record_id: str) -> None:
        row = self.session.scalar(
            select(RecordRow).where(RecordRow.kind == self.kind, RecordRow.id == record_id)
        )
        if row is None:
            raise NotFound(KINDS[self.kind], record_id)
        self.session.delete(row)
