"""Upstream's default API policies, as data: name, check string, what it covers.

The check strings are Neutron's (neutron 2131d26f, neutron/conf/policies/qos.py, with the
base rules now in neutron-lib's neutron_lib/policy/rules.py): since 2024.2 creating and
changing QoS policies and rules needs the project's `manager` role (or admin), reading them
`reader`, and a shared policy is readable by everyone. The API loads these into
oslo.policy (`api/policy.py`); an operator's policy.yaml overrides any of them by name, in
the format OpenStack operators already use.
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT_SCOPE = ("project",)


@dataclass(frozen=True, slots=True)
class PolicyDefault:
    name: str
    check_str: str
    description: str
    operations: tuple[tuple[str, str], ...] = ()  # (method, path)
    scope_types: tuple[str, ...] = PROJECT_SCOPE


# neutron_lib/policy/rules.py and neutron/conf/policies/base.py
ADMIN = "rule:admin_only"
PROJECT_MANAGER = "role:manager and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
ADMIN_OR_PROJECT_MANAGER = f"({ADMIN}) or ({PROJECT_MANAGER})"
ADMIN_OR_PARENT_OWNER_READER = f"({ADMIN}) or (role:reader and rule:ext_parent_owner)"
ADMIN_OR_PARENT_OWNER_MANAGER = f"({ADMIN}) or (role:manager and rule:ext_parent_owner)"

BASE_RULES: tuple[PolicyDefault, ...] = (
    PolicyDefault("context_is_admin", "role:admin", "The admin role", scope_types=()),
    PolicyDefault("admin_only", "rule:context_is_admin", "Admin only", scope_types=()),
    PolicyDefault("regular_user", "", "Anyone authenticated", scope_types=()),
    PolicyDefault(
        "ext_parent_owner",
        "project_id:%(ext_parent:project_id)s",
        "The owner of the parent resource (a rule's policy)",
        scope_types=(),
    ),
    PolicyDefault(
        "shared_qos_policy", "field:policies:shared=True", "A shared QoS policy", scope_types=()
    ),
)

_POLICIES = "/v2.0/qos/policies"
_RULE_TYPES = (
    "bandwidth_limit",
    "packet_rate_limit",
    "dscp_marking",
    "minimum_bandwidth",
    "minimum_packet_rate",
)


def _rule_defaults() -> tuple[PolicyDefault, ...]:
    out = []
    for rule_type in _RULE_TYPES:
        path = f"{_POLICIES}/{{policy_id}}/{rule_type}_rules"
        out += [
            PolicyDefault(
                f"get_policy_{rule_type}_rule",
                ADMIN_OR_PARENT_OWNER_READER,
                f"Get a QoS {rule_type} rule",
                (("GET", path), ("GET", path + "/{rule_id}")),
            ),
            PolicyDefault(
                f"create_policy_{rule_type}_rule",
                ADMIN_OR_PARENT_OWNER_MANAGER,
                f"Create a QoS {rule_type} rule",
                (("POST", path),),
            ),
            PolicyDefault(
                f"update_policy_{rule_type}_rule",
                ADMIN_OR_PARENT_OWNER_MANAGER,
                f"Update a QoS {rule_type} rule",
                (("PUT", path + "/{rule_id}"),),
            ),
            PolicyDefault(
                f"delete_policy_{rule_type}_rule",
                ADMIN_OR_PARENT_OWNER_MANAGER,
                f"Delete a QoS {rule_type} rule",
                (("DELETE", path + "/{rule_id}"),),
            ),
        ]
    return tuple(out)


NEUTRON_QOS: tuple[PolicyDefault, ...] = (
    PolicyDefault(
        "get_policy",
        f"({ADMIN}) or ({PROJECT_READER}) or rule:shared_qos_policy",
        "Get QoS policies",
        (("GET", _POLICIES), ("GET", _POLICIES + "/{id}")),
    ),
    PolicyDefault(
        "create_policy", ADMIN_OR_PROJECT_MANAGER, "Create a QoS policy", (("POST", _POLICIES),)
    ),
    PolicyDefault(
        "update_policy",
        ADMIN_OR_PROJECT_MANAGER,
        "Update a QoS policy",
        (("PUT", _POLICIES + "/{id}"),),
    ),
    PolicyDefault(
        "delete_policy",
        ADMIN_OR_PROJECT_MANAGER,
        "Delete a QoS policy",
        (("DELETE", _POLICIES + "/{id}"),),
    ),
    PolicyDefault(
        "get_rule_type",
        "role:reader",
        "Get available QoS rule types (the details of one are admin-only in the plugin)",
        (("GET", "/v2.0/qos/rule-types"), ("GET", "/v2.0/qos/rule-types/{rule_type}")),
    ),
    *_rule_defaults(),
)

# neutron/conf/policies/network.py and port.py: changing a network or a port (its
# qos_policy_id included) needs the member role in its project; sharing a network is the
# admin's.
ADMIN_OR_PROJECT_MEMBER = f"({ADMIN}) or (role:member and project_id:%(project_id)s)"
NEUTRON_NETWORK: tuple[PolicyDefault, ...] = (
    # neutron/conf/policies/port.py: a port's Placement resource request is the admin's.
    PolicyDefault(
        "get_port:resource_request",
        ADMIN,
        "Read a port's resource_request",
        (("GET", "/v2.0/ports/{id}"),),
    ),
    PolicyDefault(
        "create_network",
        ADMIN_OR_PROJECT_MEMBER,
        "Create a network",
        (("POST", "/v2.0/networks"),),
    ),
    PolicyDefault(
        "update_network",
        ADMIN_OR_PROJECT_MEMBER,
        "Update a network",
        (("PUT", "/v2.0/networks/{id}"),),
    ),
    PolicyDefault(
        "create_port",
        ADMIN_OR_PROJECT_MEMBER,
        "Create a port (on a network the caller may use)",
        (("POST", "/v2.0/ports"),),
    ),
    PolicyDefault(
        "update_port",
        ADMIN_OR_PROJECT_MEMBER,
        "Update a port",
        (("PUT", "/v2.0/ports/{id}"),),
    ),
    PolicyDefault(
        "create_network:shared",
        ADMIN,
        "Create a shared network",
        (("POST", "/v2.0/networks"),),
    ),
)

# neutron/conf/policies/rbac.py (neutron 211d2d95): sharing with one project is the owner's
# member's, with every project (`*`) the admin's; an entry is read by its owner's readers.
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
NO_WILDCARD = "(not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)"
_RBAC = "/v2.0/rbac-policies"
NEUTRON_RBAC: tuple[PolicyDefault, ...] = (
    PolicyDefault(
        "restrict_wildcard",
        f"{NO_WILDCARD} or ({ADMIN})",
        "Definition of a wildcard target_project",
        scope_types=(),
    ),
    PolicyDefault(
        "create_rbac_policy",
        f"({ADMIN}) or ({PROJECT_MEMBER})",
        "Create an RBAC policy",
        (("POST", _RBAC),),
    ),
    PolicyDefault(
        "create_rbac_policy:target_tenant",
        f"({ADMIN}) or {NO_WILDCARD}",
        "Specify ``target_tenant`` when creating an RBAC policy",
        (("POST", _RBAC),),
    ),
    PolicyDefault(
        "update_rbac_policy",
        f"({ADMIN}) or ({PROJECT_MEMBER})",
        "Update an RBAC policy",
        (("PUT", _RBAC + "/{id}"),),
    ),
    PolicyDefault(
        "update_rbac_policy:target_tenant",
        f"({ADMIN}) or {NO_WILDCARD}",
        "Update ``target_tenant`` attribute of an RBAC policy",
        (("PUT", _RBAC + "/{id}"),),
    ),
    PolicyDefault(
        "get_rbac_policy",
        f"({ADMIN}) or ({PROJECT_READER})",
        "Get an RBAC policy",
        (("GET", _RBAC), ("GET", _RBAC + "/{id}")),
    ),
    PolicyDefault(
        "delete_rbac_policy",
        f"({ADMIN}) or ({PROJECT_MEMBER})",
        "Delete an RBAC policy",
        (("DELETE", _RBAC + "/{id}"),),
    ),
)


def _admin_rules(names: tuple[str, ...], check: str, what: str) -> tuple[PolicyDefault, ...]:
    return tuple(PolicyDefault(n, check, what, scope_types=()) for n in names)


# nova/policies/*.py: every one of these is ADMIN (rule:context_is_admin) upstream.
NOVA: tuple[PolicyDefault, ...] = _admin_rules(
    tuple(
        f"os_compute_api:{n}"
        for n in (
            "os-flavor-manage:create",
            "os-flavor-manage:update",
            "os-flavor-manage:delete",
            "os-flavor-extra-specs:create",
            "os-flavor-extra-specs:update",
            "os-flavor-extra-specs:delete",
            "os-flavor-access",
            "os-flavor-access:addTenantAccess",
            "os-flavor-access:removeTenantAccess",
            "os-hypervisors:list",
            "os-hypervisors:show",
            "os-availability-zone:detail",
            "os-aggregates:index",
            "os-aggregates:create",
            "os-aggregates:show",
            "os-aggregates:update",
            "os-aggregates:delete",
            "os-aggregates:action",
            "servers:create:forced_host",
        )
    ),
    "rule:context_is_admin",
    "Nova (nova/policies): admin only",
)
# The project rules Nova and Cinder share by name and meaning (nova/policies/base.py,
# cinder/policies/base.py): a reader reads, a member changes, in its own project; an admin
# anywhere. One engine holds both services' rules, and their check strings are the same.
PROJECT_RULES: tuple[PolicyDefault, ...] = (
    PolicyDefault(
        "project_member_api",
        "role:member and project_id:%(project_id)s",
        "A member of the target's project",
    ),
    PolicyDefault(
        "project_reader_api",
        "role:reader and project_id:%(project_id)s",
        "A reader of the target's project",
    ),
    PolicyDefault(
        "project_member_or_admin",
        "rule:project_member_api or rule:context_is_admin",
        "A member of the target's project, or an admin",
    ),
    PolicyDefault(
        "project_reader_or_admin",
        "rule:project_reader_api or rule:context_is_admin",
        "A reader of the target's project, or an admin",
    ),
)
# nova/policies/servers.py and volumes_attachments.py: servers and their volume
# attachments are read by the project's readers and changed by its members.
NOVA_PROJECT: tuple[PolicyDefault, ...] = (
    *(
        PolicyDefault(f"os_compute_api:{n}", "rule:project_reader_or_admin", "Nova: read")
        for n in (
            "servers:index",
            "servers:detail",
            "servers:show",
            "os-volumes-attachments:index",
        )
    ),
    *(
        PolicyDefault(f"os_compute_api:{n}", "rule:project_member_or_admin", "Nova: change")
        for n in (
            "servers:create",
            "servers:delete",
            "os-volumes-attachments:create",
            "os-volumes-attachments:delete",
        )
    ),
    *_admin_rules(
        (
            "os_compute_api:servers:index:get_all_tenants",
            "os_compute_api:servers:detail:get_all_tenants",
        ),
        "rule:context_is_admin",
        "Nova: every project's servers",
    ),
)
# cinder/policies/volumes.py and volume_actions.py: volume:create is PROJECT_MEMBER (the
# admin as a member of its own project), reads PROJECT_READER_OR_ADMIN, changes
# PROJECT_MEMBER_OR_ADMIN.
CINDER_PROJECT: tuple[PolicyDefault, ...] = (
    PolicyDefault("volume:create", "rule:project_member_api", "Cinder: create a volume"),
    *(
        PolicyDefault(n, "rule:project_reader_or_admin", "Cinder: read")
        for n in ("volume:get", "volume:get_all")
    ),
    *(
        PolicyDefault(n, "rule:project_member_or_admin", "Cinder: change")
        for n in ("volume:delete", "volume:extend", "volume:retype")
    ),
)
# cinder/policies/*.py: RULE_ADMIN_API for each (admin_api is "is_admin:True or (role:admin
# and is_admin_project:True)"; qosplane has no admin project apart, so role:admin).
CINDER: tuple[PolicyDefault, ...] = (
    PolicyDefault("admin_api", "role:admin", "Cinder's admin_api", scope_types=()),
    *_admin_rules(
        tuple(
            f"volume_extension:{n}"
            for n in (
                "types_manage",
                "types_extra_specs:index",
                "types_extra_specs:show",
                "types_extra_specs:create",
                "types_extra_specs:update",
                "types_extra_specs:delete",
                "volume_type_encryption:get",
                "volume_type_encryption:create",
                "volume_type_encryption:update",
                "volume_type_encryption:delete",
                "qos_specs_manage:get_all",
                "qos_specs_manage:get",
                # cinder/policies/volume_type.py QOS_POLICY: the type view's qos_specs_id.
                "access_types_qos_specs_id",
                "qos_specs_manage:create",
                "qos_specs_manage:update",
                "qos_specs_manage:delete",
            )
        ),
        "rule:admin_api",
        "Cinder (cinder/policies): admin only",
    ),
)
# keystone/common/policies/base.py: admin_required, and ADMIN_OR_SYSTEM_READER for reads.
_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"
KEYSTONE: tuple[PolicyDefault, ...] = (
    PolicyDefault("admin_required", "role:admin", "Keystone's admin", scope_types=()),
    *_admin_rules(
        tuple(
            f"identity:{n}"
            for n in (
                "list_projects",
                "get_project",
                "list_users",
                "get_user",
                "list_user_projects",
                "list_grants",
                "check_grant",
                "list_role_assignments",
                "list_roles",
                "get_role",
                "check_system_grant_for_user",
                "list_system_grants_for_user",
                "check_system_grant_for_group",
                "list_system_grants_for_group",
                "get_implied_role",
                "check_implied_role",
                "list_implied_roles",
                "list_role_inference_rules",
                "list_domains",
                "get_domain",
                "list_groups",
                "get_group",
                "list_users_in_group",
                "list_groups_for_user",
                "check_user_in_group",
            )
        ),
        _SYSTEM_READER,
        "Keystone read: admin or system reader",
    ),
    *_admin_rules(
        tuple(
            f"identity:{n}"
            for n in (
                "validate_token",
                "create_project",
                "update_project",
                "delete_project",
                "create_user",
                "update_user",
                "delete_user",
                "change_password",
                "create_role",
                "update_role",
                "delete_role",
                "create_implied_role",
                "delete_implied_role",
                "create_grant",
                "revoke_grant",
                "create_system_grant_for_user",
                "revoke_system_grant_for_user",
                "create_system_grant_for_group",
                "revoke_system_grant_for_group",
                "create_domain",
                "update_domain",
                "delete_domain",
                "create_group",
                "update_group",
                "delete_group",
                "add_user_to_group",
                "remove_user_from_group",
            )
        ),
        "rule:admin_required",
        "Keystone change: admin only",
    ),
)
# glance/policies/image.py: making an image public is the admin's.
GLANCE: tuple[PolicyDefault, ...] = _admin_rules(
    ("publicize_image",), "rule:context_is_admin", "Glance: publicize an image"
)
# qosplane's own API (the agents' calls and measurements).
QOSPLANE: tuple[PolicyDefault, ...] = _admin_rules(
    tuple(
        f"qosplane:{n}"
        for n in (
            "hosts:list",
            "hosts:show",
            "hosts:register",
            "hosts:heartbeat",
            "hosts:report",
            "hosts:watch",
            "servers:measure",
        )
    ),
    "rule:context_is_admin",
    "qosplane's agent API: admin only",
)

DEFAULTS: tuple[PolicyDefault, ...] = (
    BASE_RULES
    + PROJECT_RULES
    + NOVA_PROJECT
    + CINDER_PROJECT
    + NEUTRON_QOS
    + NEUTRON_NETWORK
    + NEUTRON_RBAC
    + NOVA
    + CINDER
    + KEYSTONE
    + GLANCE
    + QOSPLANE
)
