"""Neutron QoS's plan-affecting operations: a policy and its rules."""

from __future__ import annotations

from sqlalchemy.orm import Session

from qosplane.model.network_qos import QosPolicy, Rule
from qosplane.service.plans import PolicyChanged, Replanner
from qosplane.store.qos_policies import QosPolicyRepository


class NeutronQosService:
    def __init__(self, session: Session) -> None:
        self.policies = QosPolicyRepository(session)
        self.plans = Replanner(session)

    def update_policy(
        self,
        policy_id: str,
        *,
        name: str | None,
        description: str | None,
        shared: bool | None,
        is_default: bool | None,
        if_revision: int | None,
    ) -> QosPolicy:
        with self.plans.changing(PolicyChanged(policy_id)):
            return self.policies.update(
                policy_id,
                name=name,
                description=description,
                shared=shared,
                is_default=is_default,
                if_revision=if_revision,
            )

    def add_rule(self, policy_id: str, rule: Rule, if_revision: int | None) -> Rule:
        with self.plans.changing(PolicyChanged(policy_id)):
            return self.policies.add_rule(policy_id, rule, if_revision)

    def replace_rule(
        self, policy_id: str, rule_id: str, rule: Rule, if_revision: int | None
    ) -> Rule:
        with self.plans.changing(PolicyChanged(policy_id)):
            return self.policies.replace_rule(policy_id, rule_id, rule, if_revision)

    def delete_rule(self, policy_id: str, rule_id: str, if_revision: int | None) -> None:
        with self.plans.changing(PolicyChanged(policy_id)):
            self.policies.delete_rule(policy_id, rule_id, if_revision)
