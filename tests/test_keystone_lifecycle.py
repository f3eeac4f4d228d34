"""Keystone's life cycle: a token ends the moment its revocation, its user's or project's
deletion or disabling, a password change or the removal of a role says it should, not at
its expiry; roles are what is assigned now, implied roles included.

Upstream: keystone/api/auth.py (validate, revoke), keystone/identity/core.py (revocation on
disable, password change, delete), keystone/assignment/core.py (on grant removal).
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ADMIN
from tests.test_api import token

ID = "/identity/v3"
QOS = "/networking/v2.0/qos/policies"


def login(client: TestClient, user: str, password: str, project: str) -> dict[str, str]:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user, "password": password}},
            },
            "scope": {"project": {"id": project}},
        }
    }
    r = client.post(f"{ID}/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return {"X-Auth-Token": r.headers["X-Subject-Token"]}


def login_status(client: TestClient, user: str, password: str, project: str) -> int:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user, "password": password}},
            },
            "scope": {"project": {"id": project}},
        }
    }
    status: int = client.post(f"{ID}/auth/tokens", json=body).status_code
    return status


def create(client: TestClient, admin: dict[str, str], kind: str, **fields: Any) -> str:
    r = client.post(f"{ID}/{kind}s", headers=admin, json={kind: fields})
    assert r.status_code == 201, r.text
    ident: str = r.json()[kind]["id"]
    return ident


def member_of_new_project(
    client: TestClient, admin: dict[str, str], *roles: str
) -> tuple[str, str, dict[str, str]]:
    """(user id, project id, the user's token) for a new user holding `roles` there."""
    project = create(client, admin, "project", name=f"p-{len(roles)}-{'-'.join(roles)}")
    user = create(client, admin, "user", name=f"u-{project[:8]}", password="pw-1")
    for role in roles:
        r = client.put(f"{ID}/projects/{project}/users/{user}/roles/{role}", headers=admin)
        assert r.status_code == 204, r.text
    return user, project, login(client, user, "pw-1", project)


def can_read(client: TestClient, headers: dict[str, str]) -> int:
    status: int = client.get(QOS, headers=headers).status_code
    return status


def test_a_revoked_token_ends_at_once_and_the_users_other_tokens_stay(
    client: TestClient,
) -> None:
    admin = token(client)
    user, project, first = member_of_new_project(client, admin, "member")
    second = login(client, user, "pw-1", project)
    assert can_read(client, first) == 200
    # The user revokes its own token (token_subject in keystone's policy).
    r = client.delete(
        f"{ID}/auth/tokens", headers={**first, "X-Subject-Token": first["X-Auth-Token"]}
    )
    assert r.status_code == 204
    assert can_read(client, first) == 401
    assert can_read(client, second) == 200
    # Validating the revoked one is "Could not find token" (404); the live one validates.
    gone = client.get(
        f"{ID}/auth/tokens", headers={**admin, "X-Subject-Token": first["X-Auth-Token"]}
    )
    assert gone.status_code == 404
    live = client.get(
        f"{ID}/auth/tokens", headers={**admin, "X-Subject-Token": second["X-Auth-Token"]}
    )
    assert live.status_code == 200
    assert live.headers["X-Subject-Token"] == second["X-Auth-Token"]
    body = live.json()["token"]
    assert (body["user"]["id"], body["project"]["id"]) == (user, project)
    assert [r["name"] for r in body["roles"]] == ["member", "reader"]
    assert len(body["audit_ids"]) == 1
    head = client.head(
        f"{ID}/auth/tokens", headers={**admin, "X-Subject-Token": second["X-Auth-Token"]}
    )
    assert head.status_code == 200


def test_only_an_admin_validates_or_revokes_anothers_token(client: TestClient) -> None:
    admin = token(client)
    _, _, alice = member_of_new_project(client, admin, "member")
    _, _, bob = member_of_new_project(client, admin, "member", "reader")
    for method in ("GET", "DELETE"):
        r = client.request(
            method, f"{ID}/auth/tokens", headers={**bob, "X-Subject-Token": alice["X-Auth-Token"]}
        )
        assert r.status_code == 403, (method, r.text)
    assert can_read(client, alice) == 200
    r = client.delete(
        f"{ID}/auth/tokens", headers={**admin, "X-Subject-Token": alice["X-Auth-Token"]}
    )
    assert r.status_code == 204
    assert can_read(client, alice) == 401


def test_disabling_a_user_ends_its_tokens_and_reenabling_does_not_revive_them(
    client: TestClient,
) -> None:
    admin = token(client)
    user, project, held = member_of_new_project(client, admin, "member")
    r = client.patch(f"{ID}/users/{user}", headers=admin, json={"user": {"enabled": False}})
    assert r.status_code == 200
    assert r.json()["user"]["enabled"] is False
    assert can_read(client, held) == 401
    assert login_status(client, user, "pw-1", project) == 401
    client.patch(f"{ID}/users/{user}", headers=admin, json={"user": {"enabled": True}})
    assert can_read(client, held) == 401
    assert can_read(client, login(client, user, "pw-1", project)) == 200


def test_a_password_change_ends_the_users_tokens(client: TestClient) -> None:
    admin = token(client)
    user, project, held = member_of_new_project(client, admin, "member")
    wrong = client.post(
        f"{ID}/users/{user}/password",
        headers=held,
        json={"user": {"original_password": "nope", "password": "pw-2"}},
    )
    assert wrong.status_code == 401
    assert can_read(client, held) == 200
    r = client.post(
        f"{ID}/users/{user}/password",
        headers=held,
        json={"user": {"original_password": "pw-1", "password": "pw-2"}},
    )
    assert r.status_code == 204
    assert can_read(client, held) == 401
    assert login_status(client, user, "pw-1", project) == 401
    fresh = login(client, user, "pw-2", project)
    # The admin's reset does the same.
    client.patch(f"{ID}/users/{user}", headers=admin, json={"user": {"password": "pw-3"}})
    assert can_read(client, fresh) == 401


def test_deleting_a_user_or_a_project_ends_their_tokens(client: TestClient) -> None:
    admin = token(client)
    user, _, held = member_of_new_project(client, admin, "member")
    assert client.delete(f"{ID}/users/{user}", headers=admin).status_code == 204
    assert can_read(client, held) == 401
    assert client.get(f"{ID}/users/{user}", headers=admin).status_code == 404
    assert client.delete(f"{ID}/users/{user}", headers=admin).status_code == 404

    _, project, held = member_of_new_project(client, admin, "reader")
    assert client.delete(f"{ID}/projects/{project}", headers=admin).status_code == 204
    assert can_read(client, held) == 401
    assert client.get(f"{ID}/projects/{project}", headers=admin).status_code == 404


def test_a_disabled_project_refuses_its_tokens_and_logins(client: TestClient) -> None:
    admin = token(client)
    user, project, held = member_of_new_project(client, admin, "member")
    r = client.patch(
        f"{ID}/projects/{project}",
        headers=admin,
        json={"project": {"enabled": False, "description": "frozen"}},
    )
    assert r.status_code == 200
    assert r.json()["project"]["description"] == "frozen"
    assert can_read(client, held) == 401
    assert login_status(client, user, "pw-1", project) == 401


def test_removing_a_role_takes_it_from_live_tokens(client: TestClient) -> None:
    admin = token(client)
    user, project, held = member_of_new_project(client, admin, "manager", "reader")
    made = client.post(QOS, headers=held, json={"policy": {"name": "mine"}})
    assert made.status_code == 201, made.text
    base = f"{ID}/projects/{project}/users/{user}/roles"
    assert client.head(f"{base}/manager", headers=admin).status_code == 204
    listed = client.get(base, headers=admin).json()["roles"]
    assert sorted(r["name"] for r in listed) == ["manager", "reader"]
    assert client.delete(f"{base}/manager", headers=admin).status_code == 204
    assert client.head(f"{base}/manager", headers=admin).status_code == 404
    assert client.delete(f"{base}/manager", headers=admin).status_code == 404
    # The same token: still a reader, no longer a manager.
    assert can_read(client, held) == 200
    refused = client.post(QOS, headers=held, json={"policy": {"name": "again"}})
    assert refused.status_code == 403
    assert client.delete(f"{base}/reader", headers=admin).status_code == 204
    assert can_read(client, held) == 401


def test_implied_roles_are_data_and_a_new_role_can_carry_member(client: TestClient) -> None:
    admin = token(client)
    operator = create(client, admin, "role", name="operator", description="ops")
    r = client.put(f"{ID}/roles/{operator}/implies/member", headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["role_inference"]["implies"]["id"] == "member"
    assert client.head(f"{ID}/roles/{operator}/implies/member", headers=admin).status_code == 204
    listed = client.get(f"{ID}/roles/{operator}/implies", headers=admin).json()
    assert [i["id"] for i in listed["role_inference"]["implies"]] == ["member"]
    everything = client.get(f"{ID}/role_inferences", headers=admin).json()["role_inferences"]
    assert {i["prior_role"]["id"] for i in everything} >= {"admin", "manager", "member", operator}
    # A cycle is refused.
    assert client.put(f"{ID}/roles/member/implies/{operator}", headers=admin).status_code == 400

    _, _, held = member_of_new_project(client, admin, operator)

    def roles_now() -> list[str]:
        subject = {**admin, "X-Subject-Token": held["X-Auth-Token"]}
        body = client.get(f"{ID}/auth/tokens", headers=subject).json()
        return [r["name"] for r in body["token"]["roles"]]

    assert roles_now() == ["member", "reader", "operator"]
    assert client.delete(f"{ID}/roles/{operator}/implies/member", headers=admin).status_code == 204
    assert roles_now() == ["operator"]
    # The defaults stay: their names are what policies check.
    assert client.delete(f"{ID}/roles/member", headers=admin).status_code == 409
    assert client.delete(f"{ID}/roles/{operator}", headers=admin).status_code == 204
    assert client.get(f"{ID}/roles/{operator}", headers=admin).status_code == 404
    assert can_read(client, held) == 401


def test_users_and_projects_take_keystones_fields(client: TestClient) -> None:
    admin = token(client)
    project = client.post(
        f"{ID}/projects",
        headers=admin,
        json={"project": {"name": "quiet", "enabled": False, "description": "d"}},
    ).json()["project"]
    assert (project["enabled"], project["description"]) == (False, "d")
    dup = client.post(f"{ID}/projects", headers=admin, json={"project": {"name": "quiet"}})
    assert dup.status_code == 409
    assert dup.json()["error"]["title"] == "Conflict"
    nowhere = client.post(
        f"{ID}/users", headers=admin, json={"user": {"name": "x", "domain_id": "nowhere"}}
    )
    assert nowhere.status_code == 404
    # Keystone lets a user exist without a password; it cannot log in with one.
    user = client.post(
        f"{ID}/users",
        headers=admin,
        json={"user": {"name": "nopw", "description": "svc", "email": "a@b.c"}},
    ).json()["user"]
    assert (user["description"], user["email"]) == ("svc", "a@b.c")
    assert login_status(client, user["id"], "", project["id"]) in (400, 401)
    renamed = client.patch(
        f"{ID}/users/{user['id']}", headers=admin, json={"user": {"name": "svc-1"}}
    )
    assert renamed.json()["user"]["name"] == "svc-1"
    taken = client.patch(
        f"{ID}/users/{user['id']}", headers=admin, json={"user": {"name": "admin"}}
    )
    assert taken.status_code == 409
    disabled = client.get(f"{ID}/projects?enabled=false", headers=admin).json()["projects"]
    assert [p["name"] for p in disabled] == ["quiet"]


def test_identity_changes_are_the_admins(client: TestClient) -> None:
    admin = token(client)
    user, project, member = member_of_new_project(client, admin, "member")
    for method, path, body in (
        ("PATCH", f"{ID}/users/{user}", {"user": {"enabled": False}}),
        ("DELETE", f"{ID}/users/{user}", None),
        ("PATCH", f"{ID}/projects/{project}", {"project": {"name": "mine"}}),
        ("DELETE", f"{ID}/projects/{project}", None),
        ("POST", f"{ID}/roles", {"role": {"name": "boss"}}),
        ("PUT", f"{ID}/roles/reader/implies/member", None),
        ("DELETE", f"{ID}/projects/{project}/users/{user}/roles/member", None),
    ):
        r = client.request(method, path, headers=member, json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert can_read(client, member) == 200
    mine = client.get(f"{ID}/users/{user}/projects", headers=member).json()["projects"]
    assert [p["id"] for p in mine] == [project]
    assert client.get(f"{ID}/users/{ADMIN.user_id}/projects", headers=member).status_code == 403


def system_login(client: TestClient, user: str, password: str) -> Any:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user, "password": password}},
            },
            "scope": {"system": {"all": True}},
        }
    }
    return client.post(f"{ID}/auth/tokens", json=body)


def test_a_system_reader_reads_identity_and_nothing_else(client: TestClient) -> None:
    """keystone/api/system.py grants; ADMIN_OR_SYSTEM_READER reads; other services take
    project-scoped tokens only (their policies' scope_types are ['project'])."""
    admin = token(client)
    user, project, _ = member_of_new_project(client, admin, "member")
    assert system_login(client, user, "pw-1").status_code == 401  # no role on the system
    grant = f"{ID}/system/users/{user}/roles/reader"
    assert client.put(grant, headers=admin).status_code == 204
    assert client.head(grant, headers=admin).status_code == 204
    listed = client.get(f"{ID}/system/users/{user}/roles", headers=admin).json()["roles"]
    assert [r["id"] for r in listed] == ["reader"]
    r = system_login(client, user, "pw-1")
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["system"] == {"all": True}
    assert "project" not in body
    assert [x["name"] for x in body["roles"]] == ["reader"]
    system = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    assert client.get(f"{ID}/projects", headers=system).status_code == 200
    assert client.get(f"{ID}/users/{ADMIN.user_id}", headers=system).status_code == 200
    assert (
        client.get(f"{ID}/projects/{project}/users/{user}/roles", headers=system).status_code == 200
    )
    assigned = client.get(f"{ID}/role_assignments?user.id={user}", headers=admin).json()
    assert {"system": {"all": True}} in [a["scope"] for a in assigned["role_assignments"]]
    refused = client.post(f"{ID}/projects", headers=system, json={"project": {"name": "nope"}})
    assert refused.status_code == 403
    for path in (QOS, "/compute/v2.1/flavors", f"/volume/v3/{project}/volumes"):
        assert client.get(path, headers=system).status_code == 403, path
    assert client.delete(grant, headers=admin).status_code == 204
    assert client.get(f"{ID}/projects", headers=system).status_code == 401
    bad = client.post(
        f"{ID}/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"id": user, "password": "pw-1"}},
                },
                "scope": {"system": {"all": "yes"}},
            }
        },
    )
    assert bad.status_code == 400
    member = login(client, user, "pw-1", project)
    assert client.put(f"{ID}/system/users/{user}/roles/admin", headers=member).status_code == 403


def test_an_unscoped_token_names_the_user_and_opens_nothing_else(client: TestClient) -> None:
    """keystone/auth/core.py: no scope and no default project give an unscoped token."""
    admin = token(client)
    user = create(client, admin, "user", name="loner", password="pw-1")
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user, "password": "pw-1"}},
            }
        }
    }
    r = client.post(f"{ID}/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    shown = r.json()["token"]
    assert "project" not in shown
    assert "roles" not in shown
    assert "catalog" not in shown
    unscoped = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    assert client.get(f"{ID}/users/{user}", headers=unscoped).status_code == 200
    assert client.get(f"{ID}/users/{user}/projects", headers=unscoped).json()["projects"] == []
    assert client.get(f"{ID}/projects", headers=unscoped).status_code == 403
    assert client.get(f"{ID}/roles", headers=unscoped).status_code == 403
    assert client.get(QOS, headers=unscoped).status_code == 403
    validated = client.get(
        f"{ID}/auth/tokens", headers={**admin, "X-Subject-Token": unscoped["X-Auth-Token"]}
    )
    assert validated.json()["token"]["user"]["id"] == user


def test_unknown_attributes_and_tags_are_kept(client: TestClient) -> None:
    """Keystone stores what it does not know in `extra` and shows it back."""
    admin = token(client)
    project = client.post(
        f"{ID}/projects",
        headers=admin,
        json={"project": {"name": "tagged", "tags": ["a", "b"], "cost_centre": "42"}},
    ).json()["project"]
    assert (project["tags"], project["cost_centre"]) == (["a", "b"], "42")
    shown = client.get(f"{ID}/projects/{project['id']}", headers=admin).json()["project"]
    listed = client.get(f"{ID}/projects", headers=admin).json()["projects"]
    assert shown == next(p for p in listed if p["id"] == project["id"])
    retagged = client.patch(
        f"{ID}/projects/{project['id']}", headers=admin, json={"project": {"tags": ["c"]}}
    )
    assert retagged.json()["project"]["tags"] == ["c"]
    for bad in (["x", "x"], ["a/b"], [""], "a"):
        r = client.patch(
            f"{ID}/projects/{project['id']}", headers=admin, json={"project": {"tags": bad}}
        )
        assert r.status_code == 400, bad
    user = client.post(
        f"{ID}/users",
        headers=admin,
        json={"user": {"name": "extra", "password": "pw", "project_id": project["id"]}},
    ).json()["user"]
    assert user["project_id"] == project["id"]
    updated = client.patch(
        f"{ID}/users/{user['id']}", headers=admin, json={"user": {"team": "net"}}
    ).json()["user"]
    assert (updated["project_id"], updated["team"]) == (project["id"], "net")


def test_password_hash_rounds_apply_to_new_passwords_and_stored_ones_keep_theirs(
    client: TestClient,
) -> None:
    """Keystone's [identity] password_hash_rounds: a change affects new passwords only."""
    from dataclasses import replace

    from qosplane.api.app import build_app
    from qosplane.api.common import Services
    from qosplane.store.tables import UserRow

    services: Services = client.app.state.services  # type: ignore[attr-defined]
    admin = token(client)
    user, project, _ = member_of_new_project(client, admin, "member")

    def rounds_of(user_id: str) -> int:
        with services.db.transaction() as s:
            row = s.get(UserRow, user_id)
            assert row is not None
            return int(row.password_hash.split("$")[1])

    assert rounds_of(user) == services.password_hash_rounds
    # The same store behind an API restarted with --password-hash-rounds 1234.
    with TestClient(build_app(replace(services, password_hash_rounds=1_234))) as restarted:
        assert login_status(restarted, user, "pw-1", project) == 201  # the hash keeps its own
        assert login_status(restarted, user, "wrong", project) == 401
        r = restarted.patch(
            f"{ID}/users/{user}", headers=admin, json={"user": {"password": "pw-2"}}
        )
        assert r.status_code == 200, r.text
        assert rounds_of(user) == 1_234
        assert login_status(restarted, user, "pw-2", project) == 201
        other = create(restarted, admin, "user", name="new-with-1234", password="pw-3")
        assert rounds_of(other) == 1_234
