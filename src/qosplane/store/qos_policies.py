"""Neutron QoS policies and rules, as model QosPolicy objects.

Every rule change runs Neutron's checks against the rules already stored (duplicates,
min/max conflicts) and bumps the policy's revision_number; callers pass the revision they
read to get `If-Match` semantics.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict, NotFound, RevisionMismatch
from qosplane.model.network_qos import (
    Direction,
    QosPolicy,
    Rule,
    check_rule_fits,
)
from qosplane.openstack.neutron import RULE_TABLE
from qosplane.store.database import fetch
from qosplane.store.rbac import WILDCARD, RbacRepository
from qosplane.store.tables import QosPolicyRow, QosPolicyTagRow, QosRuleRow, RbacPolicyRow


def _rule_row(rule: Rule, policy_id: str, position: int) -> QosRuleRow:
    """The columns are the model's field names (canonical units): one row shape for all
    five types, filled from the rule type's table entry."""
    row = QosRuleRow(
        id=rule.id or str(uuid.uuid4()),
        policy_id=policy_id,
        position=position,
        rule_type=rule.type_name,
        direction=rule.direction.value,
    )
    for wire in RULE_TABLE[rule.type_name].fields:
        setattr(row, wire.model, getattr(rule, wire.model))
    return row


def _rule_model(row: QosRuleRow) -> Rule:
    kind = RULE_TABLE[row.rule_type]
    values: dict[str, Any] = {wire.model: getattr(row, wire.model) or 0 for wire in kind.fields}
    if kind.directions:
        values["direction"] = Direction(row.direction)
    return kind.model(**values, id=row.id)


class QosPolicyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, policy_id: str) -> QosPolicyRow:
        return fetch(self.session, QosPolicyRow, policy_id, "QoS policy")

    def _rules(self, policy_id: str) -> list[Rule]:
        rows = self.session.scalars(
            select(QosRuleRow)
            .where(QosRuleRow.policy_id == policy_id)
            .order_by(QosRuleRow.position)
        )
        return [_rule_model(r) for r in rows]

    def _model(self, row: QosPolicyRow) -> QosPolicy:
        tags = self.session.scalars(
            select(QosPolicyTagRow.tag)
            .where(QosPolicyTagRow.policy_id == row.id)
            .order_by(QosPolicyTagRow.tag)
        )
        return QosPolicy(
            name=row.name,
            id=row.id,
            description=row.description,
            shared=row.shared,
            is_default=row.is_default,
            project_id=row.project_id,
            tags=tuple(tags),
            rules=tuple(self._rules(row.id)),
        )

    def revision(self, policy_id: str) -> int:
        return self._row(policy_id).revision_number

    def create(self, policy: QosPolicy) -> QosPolicy:
        if policy.is_default:
            self._check_single_default(policy.project_id, policy.id)
        row = QosPolicyRow(
            id=policy.id or str(uuid.uuid4()),
            project_id=policy.project_id,
            name=policy.name,
            description=policy.description,
            shared=policy.shared,
            is_default=policy.is_default,
            revision_number=0,
        )
        self.session.add(row)
        self.session.flush()
        if policy.shared:
            RbacRepository(self.session).create(row.id, WILDCARD, row.project_id)
        for tag in policy.tags:
            self.session.add(QosPolicyTagRow(policy_id=row.id, tag=tag))
        accepted: list[Rule] = []
        for rule in policy.rules:
            check_rule_fits(accepted, rule)
            self.session.add(_rule_row(rule, row.id, len(accepted)))
            accepted.append(rule)
        self.session.flush()
        return self._model(row)

    def get(self, policy_id: str) -> QosPolicy:
        return self._model(self._row(policy_id))

    def list(self, project_id: str | None = None) -> list[QosPolicy]:
        """A project sees its own policies and those shared with it or with every project;
        None (admin) sees all."""
        query = select(QosPolicyRow).order_by(QosPolicyRow.name, QosPolicyRow.id)
        if project_id is not None:
            query = query.where(
                (QosPolicyRow.project_id == project_id)
                | QosPolicyRow.shared.is_(True)
                | QosPolicyRow.id.in_(RbacRepository(self.session).shared_with(project_id))
            )
        return [self._model(r) for r in self.session.scalars(query)]

    def add_rule(self, policy_id: str, rule: Rule, if_revision: int | None = None) -> Rule:
        row = self._bump(policy_id, if_revision)
        existing = self._rules(policy_id)
        check_rule_fits(existing, rule)
        rule_row = _rule_row(rule, row.id, len(existing))
        self.session.add(rule_row)
        self.session.flush()
        return _rule_model(rule_row)

    def delete_rule(self, policy_id: str, rule_id: str, if_revision: int | None = None) -> None:
        self._bump(policy_id, if_revision)
        rule_row = self.session.get(QosRuleRow, rule_id)
        if rule_row is None or rule_row.policy_id != policy_id:
            raise NotFound("QoS rule", rule_id)
        self.session.delete(rule_row)

    def delete(self, policy_id: str) -> None:
        row = self._row(policy_id)
        self.session.execute(delete(RbacPolicyRow).where(RbacPolicyRow.object_id == policy_id))
        self.session.delete(row)

    def find_by_name(self, name: str, project_id: str | None = None) -> Sequence[QosPolicy]:
        return [p for p in self.list(project_id) if p.name == name]

    def update(
        self,
        policy_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        shared: bool | None = None,
        is_default: bool | None = None,
        if_revision: int | None = None,
    ) -> QosPolicy:
        """Change the given attributes only (Neutron PUTs are partial)."""
        row = self._bump(policy_id, if_revision)
        if is_default:
            self._check_single_default(row.project_id, row.id)
        if name is not None:
            row.name = name
        if description is not None:
            row.description = description
        if shared is not None:
            RbacRepository(self.session).set_shared(row.id, row.project_id, shared)
        if is_default is not None:
            row.is_default = is_default
        self.session.flush()
        return self._model(row)

    def get_rule(self, policy_id: str, rule_id: str) -> Rule:
        rule_row = self.session.get(QosRuleRow, rule_id)
        if rule_row is None or rule_row.policy_id != policy_id:
            raise NotFound("QoS rule", rule_id)
        return _rule_model(rule_row)

    def replace_rule(
        self, policy_id: str, rule_id: str, rule: Rule, if_revision: int | None = None
    ) -> Rule:
        """Swap a rule for `rule` (same id), checked against the policy's other rules."""
        self._bump(policy_id, if_revision)
        old = self.session.get(QosRuleRow, rule_id)
        if old is None or old.policy_id != policy_id:
            raise NotFound("QoS rule", rule_id)
        others = [r for r in self._rules(policy_id) if r.id != rule_id]
        check_rule_fits(others, rule)
        position = old.position
        self.session.delete(old)
        self.session.flush()
        new_row = _rule_row(rule, policy_id, position)
        new_row.id = rule_id
        self.session.add(new_row)
        self.session.flush()
        return _rule_model(new_row)

    def _bump(self, policy_id: str, if_revision: int | None) -> QosPolicyRow:
        """Increment revision_number in the database, honouring an If-Match precondition.

        With If-Match the conditional UPDATE is the compare-and-swap: two writers holding
        the same revision cannot both succeed, on SQLite or PostgreSQL, in one process or
        several. Without it there is no precondition: the database adds one, so concurrent
        writers neither lose an increment nor get a 412 they did not ask for.
        """
        row = self._row(policy_id)
        change = update(QosPolicyRow).where(QosPolicyRow.id == policy_id)
        if if_revision is not None:
            change = change.where(QosPolicyRow.revision_number == if_revision)
        result = self.session.execute(
            change.values(revision_number=QosPolicyRow.revision_number + 1).execution_options(
                synchronize_session=False
            )
        )
        self.session.refresh(row)
        if result.rowcount != 1 and if_revision is not None:  # type: ignore[attr-defined]
            raise RevisionMismatch("QoS policy", policy_id, if_revision, row.revision_number)
        return row

    def default_for(self, project_id: str) -> str | None:
        """The project's default policy, which a network created there without one gets
        (neutron/core_extensions/qos.py _create_network_policy)."""
        return self.session.scalar(
            select(QosPolicyRow.id).where(
                QosPolicyRow.project_id == project_id, QosPolicyRow.is_default.is_(True)
            )
        )

    def _check_single_default(self, project_id: str, policy_id: str) -> None:
        other = self.session.scalar(
            select(QosPolicyRow.id).where(
                QosPolicyRow.project_id == project_id,
                QosPolicyRow.is_default.is_(True),
                QosPolicyRow.id != policy_id,
            )
        )
        if other is not None:
            raise Conflict(
                "is_default",
                f"project {project_id} already has a default QoS policy ({other}); allowed: one "
                "default policy per project",
            )
