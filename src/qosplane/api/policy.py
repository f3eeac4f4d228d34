"""Every authorization decision of the API, through oslo.policy with upstream's defaults.

oslo.policy is what Keystone, Nova, Neutron and Cinder enforce with, so an operator's
policy.yaml (`<state-dir>/policy.yaml`, or `--policy-file`) overrides a rule by name exactly
as it would upstream. The enforcer has a configuration object of its own, never oslo's
global one, so two APIs in one process (the tests) do not share rules.

Neutron's semantics on top (neutron/policy.py, neutron/pecan_wsgi/hooks/policy_enforcement):
a resource the caller may not read answers 404, as if it did not exist; one it may read but
not change answers 403.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_policy import policy

from qosplane.api.auth import Context
from qosplane.model.errors import Forbidden
from qosplane.openstack.policies import DEFAULTS, PolicyDefault


@policy.register("field")
class FieldCheck(policy.Check):
    """Neutron's `field:<resource>:<attribute>=<value>` check (neutron/policy.py): true
    when the target's attribute, as text, is the value (`field:policies:shared=True`)."""

    def __init__(self, kind: str, match: str) -> None:
        resource, _, assignment = match.partition(":")
        self.attribute, _, self.value = assignment.partition("=")
        super().__init__(kind, f"{resource}:{assignment}")

    def __call__(
        self,
        target: Any,
        creds: MutableMapping[str, Any],
        enforcer: policy.Enforcer,
        current_rule: str | None = None,
    ) -> bool:
        return self.attribute in target and str(target[self.attribute]) == self.value


def _rule(default: PolicyDefault) -> policy.RuleDefault:
    operations: list[policy.Operation] = [{"method": m, "path": p} for m, p in default.operations]
    if operations:
        return policy.DocumentedRuleDefault(
            default.name,
            default.check_str,
            default.description,
            operations,
            scope_types=list(default.scope_types) or None,
        )
    return policy.RuleDefault(default.name, default.check_str, default.description)


# Where no policy file is given: a path that never exists, so oslo.policy does not go
# looking for a policy.yaml of its own in ~, /etc and the like.
NO_POLICY_FILE = "/nonexistent/qosplane/policy.yaml"


class PolicyEngine:
    def __init__(self, policy_file: Path | None = None) -> None:
        conf = cfg.ConfigOpts()
        conf([], project="qosplane", default_config_files=[], default_config_dirs=[])
        self._enforcer = policy.Enforcer(
            conf, policy_file=str(policy_file) if policy_file is not None else NO_POLICY_FILE
        )
        # Only the file named: oslo's default policy_dirs (policy.d) is searched for in ~,
        # /etc and the like, and any rules found there would override these defaults.
        conf.set_override("policy_dirs", [], "oslo_policy")
        self._enforcer.register_defaults([_rule(d) for d in DEFAULTS])

    @staticmethod
    def credentials(ctx: Context) -> dict[str, Any]:
        creds: dict[str, Any] = {
            "user_id": ctx.user_id,
            "project_id": ctx.project_id,
            "roles": list(ctx.roles),
        }
        if ctx.system:
            creds["system_scope"] = "all"
        return creds

    def allows(self, rule: str, target: Mapping[str, Any], ctx: Context) -> bool:
        allowed: bool = self._enforcer.enforce(rule, dict(target), self.credentials(ctx))
        return allowed

    def enforce(self, rule: str, target: Mapping[str, Any], ctx: Context) -> None:
        """Forbidden (403, upstream's message) unless `rule` allows the caller on `target`.
        A rule with no default is a bug, not a denial: oslo's PolicyNotRegistered."""
        allowed = self._enforcer.authorize(rule, dict(target), self.credentials(ctx))
        if not allowed:
            raise Forbidden(f"Policy doesn't allow {rule} to be performed.")
