"""Keystone's domains, project tree and groups: names unique within a domain, a domain
that must be disabled before it is deleted and takes everything in it along, a disabled
domain ending its users' tokens, projects under parents, groups whose role grants every
member holds (and loses when it leaves), and the effective assignment list.

Upstream: keystone/resource/core.py (domains, project tree), keystone/identity/core.py
(groups), keystone/assignment/core.py (group grants, effective assignments, implied-role
rules), keystone/common/policies/{domain,group,grant}.py (who may).
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.test_api import token
from tests.test_keystone_lifecycle import (
    create,
    login,
    login_status,
    member_of_new_project,
    system_login,
)

ID = "/identity/v3"
QOS = "/networking/v2.0/qos/policies"


def login_by_name(
    client: TestClient, user: str, user_domain: str, project: str, project_domain: str
) -> Any:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"name": user_domain}, "password": "pw"}
                },
            },
            "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
        }
    }
    return client.post(f"{ID}/auth/tokens", json=body)


def test_names_are_unique_within_a_domain_and_login_finds_the_right_one(
    client: TestClient,
) -> None:
    admin = token(client)
    red = create(client, admin, "domain", name="red")
    blue = create(client, admin, "domain", name="blue")
    users, projects = {}, {}
    for name, domain in (("red", red), ("blue", blue)):
        projects[name] = create(client, admin, "project", name="web", domain_id=domain)
        users[name] = create(client, admin, "user", name="ops", password="pw", domain_id=domain)
        r = client.put(
            f"{ID}/projects/{projects[name]}/users/{users[name]}/roles/member", headers=admin
        )
        assert r.status_code == 204, r.text
    # A second "web" in red is a clash; the same name in two domains is not.
    again = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "web", "domain_id": red}}
    )
    assert again.status_code == 409, again.text
    for name in ("red", "blue"):
        r = login_by_name(client, "ops", name, "web", name)
        assert r.status_code == 201, r.text
        body = r.json()["token"]
        assert body["user"]["id"] == users[name]
        assert body["user"]["domain"] == {"id": {"red": red, "blue": blue}[name], "name": name}
        assert body["project"]["id"] == projects[name]
    # A user of red does not log in to blue's project by name.
    r = client.post(
        f"{ID}/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"id": users["red"], "password": "pw"}},
                },
                "scope": {"project": {"name": "web", "domain": {"name": "blue"}}},
            }
        },
    )
    assert r.status_code == 401
    listed = client.get(f"{ID}/projects?domain_id={red}", headers=admin).json()["projects"]
    assert [p["id"] for p in listed] == [projects["red"]]
    assert listed[0]["parent_id"] == red
    assert listed[0]["domain_id"] == red


def test_a_domain_is_deleted_only_disabled_and_takes_its_contents(client: TestClient) -> None:
    admin = token(client)
    domain = create(client, admin, "domain", name="doomed")
    project = create(client, admin, "project", name="inside", domain_id=domain)
    user = create(client, admin, "user", name="insider", password="pw", domain_id=domain)
    group = create(client, admin, "group", name="crew", domain_id=domain)
    r = client.put(f"{ID}/projects/{project}/users/{user}/roles/member", headers=admin)
    assert r.status_code == 204
    live = login(client, user, "pw", project)
    assert client.get(QOS, headers=live).status_code == 200
    refused = client.delete(f"{ID}/domains/{domain}", headers=admin)
    assert refused.status_code == 403, refused.text
    assert "disable" in refused.json()["error"]["message"]
    # Disabling it ends its users' tokens at once.
    r = client.patch(f"{ID}/domains/{domain}", headers=admin, json={"domain": {"enabled": False}})
    assert r.status_code == 200
    assert r.json()["domain"]["enabled"] is False
    assert client.get(QOS, headers=live).status_code == 401
    assert client.delete(f"{ID}/domains/{domain}", headers=admin).status_code == 204
    for path in (f"projects/{project}", f"users/{user}", f"groups/{group}", f"domains/{domain}"):
        assert client.get(f"{ID}/{path}", headers=admin).status_code == 404, path
    names = [d["name"] for d in client.get(f"{ID}/domains", headers=admin).json()["domains"]]
    assert "doomed" not in names
    assert "Default" in names


def test_projects_form_a_tree_within_their_domain(client: TestClient) -> None:
    admin = token(client)
    domain = create(client, admin, "domain", name="tree")
    other = create(client, admin, "domain", name="elsewhere")
    root = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "root", "domain_id": domain}}
    ).json()["project"]
    assert root["parent_id"] == domain  # no parent named: the domain is the parent
    child = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "leaf", "parent_id": root["id"]}}
    ).json()["project"]
    assert child["parent_id"] == root["id"]
    assert child["domain_id"] == domain
    # A domain named as the parent puts the project at the top of that domain.
    top = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "top", "parent_id": domain}}
    )
    assert top.status_code == 201, top.text
    assert (top.json()["project"]["domain_id"], top.json()["project"]["parent_id"]) == (
        domain,
        domain,
    )
    across = client.post(
        f"{ID}/projects",
        headers=admin,
        json={"project": {"name": "x", "domain_id": other, "parent_id": root["id"]}},
    )
    assert across.status_code == 400
    assert "parent_id" in across.text
    # Keystone's max_project_tree_depth (5): a sixth level is refused.
    parent = child["id"]
    for level in range(3):
        parent = create(client, admin, "project", name=f"l{level}", parent_id=parent)
    too_deep = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "l9", "parent_id": parent}}
    )
    assert too_deep.status_code == 403, too_deep.text
    not_leaf = client.delete(f"{ID}/projects/{root['id']}", headers=admin)
    assert not_leaf.status_code == 403
    assert "leaf" in not_leaf.text
    moved = client.patch(
        f"{ID}/projects/{child['id']}", headers=admin, json={"project": {"domain_id": other}}
    )
    assert moved.status_code == 400
    assert "domain_id" in moved.text
    kids = client.get(f"{ID}/projects?parent_id={root['id']}", headers=admin).json()["projects"]
    assert [k["id"] for k in kids] == [child["id"]]


def test_a_project_acting_as_a_domain_is_a_domain(client: TestClient) -> None:
    admin = token(client)
    r = client.post(
        f"{ID}/projects", headers=admin, json={"project": {"name": "acting", "is_domain": True}}
    )
    assert r.status_code == 201, r.text
    acting = r.json()["project"]
    assert acting["is_domain"] is True
    assert acting["domain_id"] is None
    plain = [p["id"] for p in client.get(f"{ID}/projects", headers=admin).json()["projects"]]
    domains = client.get(f"{ID}/projects?is_domain=true", headers=admin).json()["projects"]
    assert acting["id"] not in plain
    assert acting["id"] in [d["id"] for d in domains]
    shown = client.get(f"{ID}/domains/{acting['id']}", headers=admin).json()["domain"]
    assert shown["name"] == "acting"
    # A project-scoped token on it is refused: it is not a project.
    user = create(client, admin, "user", name="d-user", password="pw")
    assert (
        client.put(
            f"{ID}/domains/{acting['id']}/users/{user}/roles/member", headers=admin
        ).status_code
        == 204
    )
    assert login_status(client, user, "pw", acting["id"]) == 401


def test_a_group_grant_is_held_by_members_and_lost_on_leaving(client: TestClient) -> None:
    admin = token(client)
    project = create(client, admin, "project", name="g-project")
    user = create(client, admin, "user", name="g-user", password="pw")
    group = create(client, admin, "group", name="g-team")
    role = create(client, admin, "role", name="g-role")
    r = client.put(f"{ID}/projects/{project}/groups/{group}/roles/member", headers=admin)
    assert r.status_code == 204
    r = client.put(f"{ID}/projects/{project}/groups/{group}/roles/{role}", headers=admin)
    assert r.status_code == 204
    listed = client.get(f"{ID}/projects/{project}/groups/{group}/roles", headers=admin).json()
    assert sorted(x["id"] for x in listed["roles"]) == sorted(["member", role])
    # Not a member yet: no role on the project, so no token.
    assert login_status(client, user, "pw", project) == 401
    assert client.put(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 204
    assert client.head(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 204
    member = login(client, user, "pw", project)
    issued = client.get(
        f"{ID}/auth/tokens", headers=admin | {"X-Subject-Token": member["X-Auth-Token"]}
    )
    roles = {r["name"]: r["id"] for r in issued.json()["token"]["roles"]}
    assert roles["g-role"] == role
    assert roles["member"] == "member"
    assert "reader" in roles
    assert client.get(QOS, headers=member).status_code == 200
    mine = client.get(f"{ID}/users/{user}/groups", headers=member).json()["groups"]
    assert [g["id"] for g in mine] == [group]
    assert client.delete(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 204
    assert client.get(QOS, headers=member).status_code == 401
    assert client.head(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 404


def test_effective_assignments_expand_groups_implied_and_domain_roles(
    client: TestClient,
) -> None:
    admin = token(client)
    domain = create(client, admin, "domain", name="eff")
    project = create(client, admin, "project", name="eff-p", domain_id=domain)
    user = create(client, admin, "user", name="eff-u", password="pw", domain_id=domain)
    group = create(client, admin, "group", name="eff-g", domain_id=domain)
    prior = create(client, admin, "role", name="eff-prior")
    implied = create(client, admin, "role", name="eff-implied")
    own = create(client, admin, "role", name="eff-own", domain_id=domain)
    assert client.put(f"{ID}/roles/{prior}/implies/{implied}", headers=admin).status_code == 201
    assert client.put(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 204
    for path in (
        f"projects/{project}/groups/{group}/roles/{prior}",
        f"projects/{project}/users/{user}/roles/{own}",
        f"domains/{domain}/users/{user}/roles/{implied}",
    ):
        assert client.put(f"{ID}/{path}", headers=admin).status_code == 204, path

    def listed(query: str) -> list[tuple[str, str, str]]:
        body = client.get(f"{ID}/role_assignments?{query}", headers=admin).json()
        out = []
        for a in body["role_assignments"]:
            actor = "user" if "user" in a else "group"
            ((kind, scope),) = a["scope"].items()
            out.append((f"{actor}:{a[actor]['id']}", f"{kind}:{scope['id']}", a["role"]["id"]))
        return sorted(out)

    direct = listed(f"scope.project.id={project}")
    assert direct == sorted(
        [
            (f"group:{group}", f"project:{project}", prior),
            (f"user:{user}", f"project:{project}", own),
        ]
    )
    effective = listed(f"scope.project.id={project}&user.id={user}&effective")
    # The group's grant reaches the user with what it implies; the domain role is gone.
    assert effective == sorted(
        [
            (f"user:{user}", f"project:{project}", prior),
            (f"user:{user}", f"project:{project}", implied),
        ]
    )
    grouped = client.get(f"{ID}/role_assignments?group.id={group}&effective", headers=admin)
    assert grouped.status_code == 400
    on_domain = listed(f"scope.domain.id={domain}")
    assert on_domain == [(f"user:{user}", f"domain:{domain}", implied)]
    # A global role may not imply a domain's own role, nor may anything imply admin.
    assert client.put(f"{ID}/roles/{prior}/implies/{own}", headers=admin).status_code == 403
    assert client.put(f"{ID}/roles/{prior}/implies/admin", headers=admin).status_code == 403


def test_domains_and_groups_are_the_admins(client: TestClient) -> None:
    """keystone/common/policies: domain and group changes are admin_required, reading
    them ADMIN_OR_SYSTEM_READER, but a project's own domain is readable to its members."""
    admin = token(client)
    group = create(client, admin, "group", name="guarded")
    domain = create(client, admin, "domain", name="guarded-d")
    for roles in (("member",), ("reader",)):
        user, _, caller = member_of_new_project(client, admin, *roles)
        calls = [
            client.post(f"{ID}/domains", headers=caller, json={"domain": {"name": "mine"}}),
            client.patch(
                f"{ID}/domains/{domain}", headers=caller, json={"domain": {"enabled": False}}
            ),
            client.delete(f"{ID}/domains/{domain}", headers=caller),
            client.get(f"{ID}/domains", headers=caller),
            client.get(f"{ID}/domains/{domain}", headers=caller),
            client.post(f"{ID}/groups", headers=caller, json={"group": {"name": "mine"}}),
            client.get(f"{ID}/groups", headers=caller),
            client.put(f"{ID}/groups/{group}/users/{user}", headers=caller),
            client.put(f"{ID}/domains/default/users/{user}/roles/admin", headers=caller),
            client.put(f"{ID}/system/groups/{group}/roles/admin", headers=caller),
            client.get(f"{ID}/groups/{group}", headers=caller),
            client.get(f"{ID}/groups/{group}/users", headers=caller),
            client.head(f"{ID}/groups/{group}/users/{user}", headers=caller),
            client.get(f"{ID}/role_inferences", headers=caller),
            client.get(f"{ID}/roles/member/implies", headers=caller),
            client.get(f"{ID}/roles/member/implies/reader", headers=caller),
            client.delete(f"{ID}/roles/member/implies/reader", headers=caller),
        ]
        assert [c.status_code for c in calls] == [403] * len(calls), roles
        assert client.get(f"{ID}/domains/default", headers=caller).status_code == 200
    assert client.head(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 404
    # A group's system grant makes its members system users.
    assert client.put(f"{ID}/system/groups/{group}/roles/reader", headers=admin).status_code == 204
    assert client.put(f"{ID}/groups/{group}/users/{user}", headers=admin).status_code == 204
    r = system_login(client, user, "pw-1")
    assert r.status_code == 201, r.text
    assert [x["name"] for x in r.json()["token"]["roles"]] == ["reader"]


def test_a_user_stays_in_its_domain(client: TestClient) -> None:
    admin = token(client)
    other = create(client, admin, "domain", name="stay")
    user = create(client, admin, "user", name="stayer", password="pw")
    moved = client.patch(f"{ID}/users/{user}", headers=admin, json={"user": {"domain_id": other}})
    assert moved.status_code == 400
    assert "user.domain_id" in moved.text
    same = client.patch(
        f"{ID}/users/{user}", headers=admin, json={"user": {"domain_id": "default"}}
    )
    assert same.status_code == 200
    assert same.json()["user"]["domain_id"] == "default"
