"""Neutron RBAC for QoS policies: share one policy with one project; the wildcard entry is
`shared`; an entry others depend on cannot go or move (RbacPolicyInUse, 409); only the
owner shares, only the admin with everyone; an entry is read by its owner alone
(neutron/db/rbac_db_mixin.py, neutron/conf/policies/rbac.py)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import token_for
from tests.test_api import token

NET = "/networking/v2.0"
QOS = f"{NET}/qos/policies"
RBAC = f"{NET}/rbac-policies"


def _member(client: TestClient, project: str, role: str = "member") -> dict[str, str]:
    return token_for(client, f"{project}-{role}", f"{project}-{role}", project, project, (role,))


def _share(client: TestClient, h: dict[str, str], policy: str, target: str) -> Any:
    body = {
        "rbac_policy": {
            "object_type": "qos_policy",
            "object_id": policy,
            "action": "access_as_shared",
            "target_tenant": target,
        }
    }
    return client.post(RBAC, headers=h, json=body)


def _policy(client: TestClient, h: dict[str, str], **fields: Any) -> str:
    r = client.post(QOS, headers=h, json={"policy": {"name": "p", **fields}})
    assert r.status_code == 201, r.text
    ident: str = r.json()["policy"]["id"]
    return ident


def test_sharing_with_one_project_lets_it_read_and_attach_and_no_one_else(
    client: TestClient,
) -> None:
    admin = token(client)
    a, b = _member(client, "proj-a"), _member(client, "proj-b")
    policy = _policy(client, admin)
    assert client.get(f"{QOS}/{policy}", headers=a).status_code == 404
    r = _share(client, admin, policy, "proj-a")
    assert r.status_code == 201, r.text
    entry = r.json()["rbac_policy"]
    assert entry["target_tenant"] == "proj-a"
    assert set(entry) == {
        "id",
        "object_type",
        "object_id",
        "action",
        "target_tenant",
        "project_id",
        "tenant_id",
    }
    assert client.get(f"{RBAC}/{entry['id']}", headers=admin).json()["rbac_policy"] == entry
    seen = client.get(f"{QOS}/{policy}", headers=a).json()["policy"]
    assert seen["shared"] is True  # shared with the caller
    assert client.get(f"{QOS}/{policy}", headers=admin).json()["policy"]["shared"] is False
    assert client.get(f"{QOS}/{policy}", headers=b).status_code == 404
    assert policy in [p["id"] for p in client.get(QOS, headers=a).json()["policies"]]
    net = client.post(f"{NET}/networks", headers=a, json={"network": {"qos_policy_id": policy}})
    assert net.status_code == 201, net.text
    refused = client.post(f"{NET}/networks", headers=b, json={"network": {"qos_policy_id": policy}})
    assert refused.status_code == 404
    # The target does not see the entry: it belongs to the policy's owner.
    assert client.get(RBAC, headers=a).json()["rbac_policies"] == []
    assert client.get(f"{RBAC}/{entry['id']}", headers=a).status_code == 404


def test_the_wildcard_entry_is_shared(client: TestClient) -> None:
    admin = token(client)
    policy = _policy(client, admin)
    client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": True}})
    entries = client.get(f"{RBAC}?object_id={policy}", headers=admin).json()["rbac_policies"]
    assert [(e["target_tenant"], e["action"]) for e in entries] == [("*", "access_as_shared")]
    assert client.delete(f"{RBAC}/{entries[0]['id']}", headers=admin).status_code == 204
    assert client.get(f"{QOS}/{policy}", headers=admin).json()["policy"]["shared"] is False
    assert _share(client, admin, policy, "*").status_code == 201
    assert client.get(f"{QOS}/{policy}", headers=admin).json()["policy"]["shared"] is True
    assert _share(client, admin, policy, "*").status_code == 409  # DuplicateRbacPolicy
    unshared = client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": False}})
    assert unshared.json()["policy"]["shared"] is False
    assert client.get(f"{QOS}/{policy}", headers=admin).json()["policy"]["shared"] is False
    assert client.get(f"{RBAC}?object_id={policy}", headers=admin).json()["rbac_policies"] == []
    # Unsharing counts the owner's own networks too (Neutron's wildcard rule).
    client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": True}})
    own = client.post(f"{NET}/networks", headers=admin, json={"network": {"qos_policy_id": policy}})
    again = client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": False}})
    assert again.status_code == 409
    client.delete(f"{NET}/networks/{own.json()['network']['id']}", headers=admin)
    final = client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": False}})
    assert final.status_code == 200


def test_an_entry_others_depend_on_stays(client: TestClient) -> None:
    admin = token(client)
    b = _member(client, "proj-b")
    policy = _policy(client, admin)
    specific = _share(client, admin, policy, "proj-b").json()["rbac_policy"]["id"]
    net = client.post(f"{NET}/networks", headers=b, json={"network": {"qos_policy_id": policy}})
    assert net.status_code == 201
    assert client.delete(f"{RBAC}/{specific}", headers=admin).status_code == 409
    moved = client.put(
        f"{RBAC}/{specific}", headers=admin, json={"rbac_policy": {"target_tenant": "proj-c"}}
    )
    assert moved.status_code == 409
    wildcard = _share(client, admin, policy, "*").json()["rbac_policy"]["id"]
    assert client.delete(f"{RBAC}/{specific}", headers=admin).status_code == 204
    assert client.delete(f"{RBAC}/{wildcard}", headers=admin).status_code == 409
    # Moving the wildcard to the very project that uses it is still removing the wildcard.
    to_b = client.put(
        f"{RBAC}/{wildcard}", headers=admin, json={"rbac_policy": {"target_tenant": "proj-b"}}
    )
    assert to_b.status_code == 409
    unshare = client.put(f"{QOS}/{policy}", headers=admin, json={"policy": {"shared": False}})
    assert unshare.status_code == 409
    client.delete(f"{NET}/networks/{net.json()['network']['id']}", headers=b)
    assert client.delete(f"{RBAC}/{wildcard}", headers=admin).status_code == 204


def test_only_the_owner_shares_and_only_the_admin_with_everyone(client: TestClient) -> None:
    admin = token(client)
    a, b = _member(client, "proj-a"), _member(client, "proj-b")
    manager = _member(client, "proj-a", "manager")
    own = _policy(client, manager)
    assert _share(client, a, own, "proj-b").status_code == 201  # a member of the owner
    assert _share(client, a, own, "*").status_code == 403
    assert _share(client, b, own, "proj-c").status_code == 400  # seen, not owned
    foreign = _policy(client, admin)
    assert _share(client, a, foreign, "proj-b").status_code == 400  # not even seen
    assert _share(client, a, "no-such-policy", "proj-b").status_code == 400
    reader = _member(client, "proj-a", "reader")
    assert _share(client, reader, own, "proj-d").status_code == 403
    entries = client.get(RBAC, headers=a).json()["rbac_policies"]
    assert [e["target_tenant"] for e in entries] == ["proj-b"]
    assert client.delete(f"{RBAC}/{entries[0]['id']}", headers=reader).status_code == 403
    assert client.delete(f"{RBAC}/{entries[0]['id']}", headers=b).status_code == 404


def test_fields_and_filters_apply(client: TestClient) -> None:
    admin = token(client)
    policy = _policy(client, admin)
    first = _share(client, admin, policy, "proj-a").json()["rbac_policy"]
    _share(client, admin, policy, "proj-b")
    only = client.get(f"{RBAC}?id={first['id']}", headers=admin).json()["rbac_policies"]
    assert [e["id"] for e in only] == [first["id"]]
    narrow = client.get(f"{RBAC}?fields=id&fields=action", headers=admin).json()["rbac_policies"]
    assert set(narrow[0]) == {"id", "action"}
    bad = _share(client, admin, policy, "")
    assert bad.status_code == 400
    wrong = client.post(
        RBAC,
        headers=admin,
        json={
            "rbac_policy": {
                "object_type": "network",
                "object_id": policy,
                "action": "access_as_shared",
                "target_tenant": "x",
            }
        },
    )
    assert wrong.status_code == 400
    assert "object_type" in wrong.json()["NeutronError"]["message"]
    # Deleting the policy takes its entries with it.
    assert client.delete(f"{QOS}/{policy}", headers=admin).status_code == 204
    assert client.get(RBAC, headers=admin).json()["rbac_policies"] == []
