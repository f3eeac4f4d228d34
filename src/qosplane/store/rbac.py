"""Neutron's RBAC entries for QoS policies (neutron/db/rbac_db_mixin.py,
neutron/objects/rbac_db.py): who besides its owner may use a policy.

A wildcard entry (`*`) is what a policy's `shared` attribute means: setting `shared` adds
or removes it, and adding or removing it sets `shared`, so both views always agree. An
entry cannot go, or move to another project, while a network or port of a project it
grants access to uses the policy and no other entry grants that project access
(RbacPolicyInUse, 409).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

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
        row = self.entry(entry_id)
        if target == row.target_project:
            return row
        self._check_still_reachable(row.object_id, without={row.id}, adding={target})
        row.target_project = target
        self._sync_shared(row.object_id)
        self.session.flush()
        return row

    def remove(self, entry_id: str) -> None:
        row = self.entry(entry_id)
        self._check_still_reachable(row.object_id, without={row.id})
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
            self._check_still_reachable(policy_id, without=set(wildcards))
            self.session.execute(delete(RbacPolicyRow).where(RbacPolicyRow.id.in_(wildcards)))
            self.session.flush()

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

    def _check_still_reachable(
        self, policy_id: str, without: set[str], adding: Iterable[str] = ()
    ) -> None:
        owner = fetch(self.session, QosPolicyRow, policy_id, "QoS policy").project_id
        targets = {r.target_project for r in self.entries(policy_id) if r.id not in without}
        targets |= set(adding)
        if WILDCARD in targets:
            return
        stranded = self.projects_using(policy_id) - targets - {owner}
        if stranded:
            raise Conflict(
                "rbac_policy",
                f"RBAC policy on object {policy_id} cannot be removed because other objects "
                "depend on it.",
            )
