"""Neutron's RBAC entries for QoS policies (neutron/db/rbac_db_mixin.py,
neutron/objects/rbac_db.py): who besides its owner may use a policy.

A wildcard entry (`*`) is what a policy's `shared` attribute means: setting `shared` adds
or removes it, and adding or removing it sets `shared`, so both views always agree.

Removing or moving an entry is refused (RbacPolicyInUse, 409) by Neutron's rule
(neutron/objects/rbac_db.py `_validate_rbac_policy_delete`): an entry for the owner's own
project always goes; one for a project goes unless that project's networks or ports use
the policy and no wildcard entry remains; the wildcard goes only when every project using
the policy, the owner's included, keeps an entry of its own.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qosplane.model.errors import Conflict
from qosplane.store.database import fetch
from qosplane.store.tables import NetworkRow, PortRow, QosPolicyRow, RbacPolicyRow

WILDCARD = "*"
QOS_POLICY = "qos_policy"
ACCESS_AS_SHARED = "access_as_shared"


class RbacRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def entry(self, entry_id: str) -> RbacPolicyRow:
        return fetch(self.session, RbacPolicyRow, entry_id, "RBAC policy")

    def entries(self, object_id: str | None = None) -> list[RbacPolicyRow]:
        query = select(RbacPolicyRow).order_by(RbacPolicyRow.object_id, RbacPolicyRow.id)
        if object_id is not None:
            query = query.where(RbacPolicyRow.object_id == object_id)
        return list(self.session.scalars(query))

    def shared_with(self, project_id: str) -> set[str]:
        """The policies shared with `project_id` by name (not by wildcard)."""
        return set(
            self.session.scalars(
                select(RbacPolicyRow.object_id).where(RbacPolicyRow.target_project == project_id)
            )
        )

    def create(self, policy_id: str, target: str, owner: str) -> RbacPolicyRow:
        policy = fetch(self.session, QosPolicyRow, policy_id, "QoS policy")
        taken = self.session.scalar(
            select(RbacPolicyRow.id).where(
                RbacPolicyRow.object_id == policy_id,
                RbacPolicyRow.action == ACCESS_AS_SHARED,
                RbacPolicyRow.target_project == target,
            )
        )
        if taken is not None:
            # neutron_lib/exceptions DuplicateRbacPolicy (409)
            raise Conflict(
                "rbac_policy",
                f"An RBAC policy already exists with those values ({taken}).",
            )
        row = RbacPolicyRow(
            id=str(uuid.uuid4()),
            object_type=QOS_POLICY,
            object_id=policy_id,
            action=ACCESS_AS_SHARED,
            target_project=target,
            project_id=owner,
        )
        self.session.add(row)
        if target == WILDCARD:
            policy.shared = True
        self.session.flush()
        return row

    def retarget(self, entry_id: str, target: str) -> RbacPolicyRow:
        """Moving an entry to a project is removing it from the old one (Neutron's
        validate_rbac_policy_update); moving it to `*` widens access and always goes."""
        row = self.entry(entry_id)
        if target == row.target_project:
            return row
        if target != WILDCARD:
            self._check_removable(row.object_id, row.target_project)
        row.target_project = target
        self._sync_shared(row.object_id)
        self.session.flush()
        return row

    def remove(self, entry_id: str) -> None:
        row = self.entry(entry_id)
        self._check_removable(row.object_id, row.target_project)
        self.session.delete(row)
        self.session.flush()
        self._sync_shared(row.object_id)

    def set_shared(self, policy_id: str, owner: str, shared: bool) -> None:
        """`shared` on the policy itself: the wildcard entry, added or (when nothing then
        loses access) removed."""
        wildcards = [r.id for r in self.entries(policy_id) if r.target_project == WILDCARD]
        if shared and not wildcards:
            self.create(policy_id, WILDCARD, owner)
        elif not shared and wildcards:
            self._check_removable(policy_id, WILDCARD)
            self.session.execute(delete(RbacPolicyRow).where(RbacPolicyRow.id.in_(wildcards)))
            self.session.flush()
            self._sync_shared(policy_id)

    def _sync_shared(self, policy_id: str) -> None:
        policy = fetch(self.session, QosPolicyRow, policy_id, "QoS policy")
        policy.shared = any(r.target_project == WILDCARD for r in self.entries(policy_id))

    def projects_using(self, policy_id: str) -> set[str]:
        return {
            project
            for row_type in (PortRow, NetworkRow)
            for project in self.session.scalars(
                select(row_type.project_id).where(row_type.qos_policy_id == policy_id)
            )
        }

    def _check_removable(self, policy_id: str, target: str) -> None:
        owner = fetch(self.session, QosPolicyRow, policy_id, "QoS policy").project_id
        if target == owner:
            return
        bound = self.projects_using(policy_id)
        targets = {r.target_project for r in self.entries(policy_id)}
        if target != WILDCARD:
            if WILDCARD in targets or target not in bound:
                return
        elif bound <= targets - {WILDCARD}:
            return
        raise Conflict(
            "rbac_policy",
            f"RBAC policy on object {policy_id} cannot be removed because other objects "
            "depend on it.",
        )
