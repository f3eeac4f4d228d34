"""Keystone v3, the part the OpenStack clients and tempest's identity tests use: version
documents, password tokens that can be validated and revoked, domains with a project tree,
users and groups, roles with implied roles, and grants to users and groups on projects,
domains and the system.

Semantics are Keystone's (keystone/api/*.py, keystone/identity/schema.py,
keystone/resource/schema.py, keystone/assignment/schema.py); each call is checked by its
upstream policy name (keystone/common/policies/*.py), with the owner exceptions the defaults
make (a user reads itself, a project member its project). One module per Keystone
subsystem: tokens, resource (domains, projects), identity (users, groups), assignment.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from qosplane.api.common import Services, wrap
from qosplane.api.keystone import assignment, identity, resource, tokens
from qosplane.api.keystone.tokens import catalog

__all__ = ["catalog", "routes"]

V3 = "/identity/v3"


def _grant_routes(w: Any) -> list[Route]:
    """Role grants of users and groups on projects and domains: four paths of one shape."""
    out = []
    for target in ("projects/{project_id}", "domains/{domain_id}"):
        for actor in ("users/{user_id}", "groups/{group_id}"):
            base = f"{V3}/{target}/{actor}/roles"
            out.append(Route(base, w(assignment.list_grants), methods=["GET"]))
            out.append(
                Route(
                    f"{base}/{{role_id}}",
                    w(assignment.grant),
                    methods=["PUT", "GET", "HEAD", "DELETE"],
                )
            )
    return out


def routes(services: Services) -> list[Route]:
    def w(handler: Any) -> Any:
        return wrap("identity", services, handler)

    return [
        Route("/identity", w(tokens.versions), methods=["GET"]),
        Route("/identity/", w(tokens.versions), methods=["GET"]),
        Route(V3, w(tokens.version), methods=["GET"]),
        Route(f"{V3}/", w(tokens.version), methods=["GET"]),
        Route(f"{V3}/auth/tokens", w(tokens.issue_token), methods=["POST"]),
        Route(f"{V3}/auth/tokens", w(tokens.validate_token), methods=["GET", "HEAD"]),
        Route(f"{V3}/auth/tokens", w(tokens.revoke_token), methods=["DELETE"]),
        Route(f"{V3}/domains", w(resource.list_domains), methods=["GET"]),
        Route(f"{V3}/domains", w(resource.create_domain), methods=["POST"]),
        Route(f"{V3}/domains/{{domain_id}}", w(resource.show_domain), methods=["GET"]),
        Route(f"{V3}/domains/{{domain_id}}", w(resource.update_domain), methods=["PATCH"]),
        Route(f"{V3}/domains/{{domain_id}}", w(resource.delete_domain), methods=["DELETE"]),
        Route(f"{V3}/projects", w(resource.list_projects), methods=["GET"]),
        Route(f"{V3}/projects", w(resource.create_project), methods=["POST"]),
        Route(f"{V3}/projects/{{project_id}}", w(resource.show_project), methods=["GET"]),
        Route(f"{V3}/projects/{{project_id}}", w(resource.update_project), methods=["PATCH"]),
        Route(f"{V3}/projects/{{project_id}}", w(resource.delete_project), methods=["DELETE"]),
        *_grant_routes(w),
        *(
            route
            for actor in ("users/{user_id}", "groups/{group_id}")
            for route in (
                Route(
                    f"{V3}/system/{actor}/roles", w(assignment.list_system_grants), methods=["GET"]
                ),
                Route(
                    f"{V3}/system/{actor}/roles/{{role_id}}",
                    w(assignment.system_grant),
                    methods=["PUT", "GET", "HEAD", "DELETE"],
                ),
            )
        ),
        Route(f"{V3}/users", w(identity.list_users), methods=["GET"]),
        Route(f"{V3}/users", w(identity.create_user), methods=["POST"]),
        Route(f"{V3}/users/{{user_id}}", w(identity.show_user), methods=["GET"]),
        Route(f"{V3}/users/{{user_id}}", w(identity.update_user), methods=["PATCH"]),
        Route(f"{V3}/users/{{user_id}}", w(identity.delete_user), methods=["DELETE"]),
        Route(f"{V3}/users/{{user_id}}/password", w(identity.change_password), methods=["POST"]),
        Route(f"{V3}/users/{{user_id}}/projects", w(identity.list_user_projects), methods=["GET"]),
        Route(f"{V3}/users/{{user_id}}/groups", w(identity.list_user_groups), methods=["GET"]),
        Route(f"{V3}/groups", w(identity.list_groups), methods=["GET"]),
        Route(f"{V3}/groups", w(identity.create_group), methods=["POST"]),
        Route(f"{V3}/groups/{{group_id}}", w(identity.show_group), methods=["GET"]),
        Route(f"{V3}/groups/{{group_id}}", w(identity.update_group), methods=["PATCH"]),
        Route(f"{V3}/groups/{{group_id}}", w(identity.delete_group), methods=["DELETE"]),
        Route(f"{V3}/groups/{{group_id}}/users", w(identity.list_group_users), methods=["GET"]),
        Route(
            f"{V3}/groups/{{group_id}}/users/{{user_id}}",
            w(identity.group_member),
            methods=["PUT", "GET", "HEAD", "DELETE"],
        ),
        Route(f"{V3}/roles", w(assignment.list_roles), methods=["GET"]),
        Route(f"{V3}/roles", w(assignment.create_role), methods=["POST"]),
        Route(f"{V3}/roles/{{role_id}}", w(assignment.show_role), methods=["GET"]),
        Route(f"{V3}/roles/{{role_id}}", w(assignment.update_role), methods=["PATCH"]),
        Route(f"{V3}/roles/{{role_id}}", w(assignment.delete_role), methods=["DELETE"]),
        Route(
            f"{V3}/roles/{{prior_role_id}}/implies",
            w(assignment.list_implied_roles),
            methods=["GET"],
        ),
        Route(
            f"{V3}/roles/{{prior_role_id}}/implies/{{implied_role_id}}",
            w(assignment.implied_role),
            methods=["PUT", "GET", "HEAD", "DELETE"],
        ),
        Route(f"{V3}/role_inferences", w(assignment.list_role_inferences), methods=["GET"]),
        Route(f"{V3}/role_assignments", w(assignment.list_assignments), methods=["GET"]),
    ]
