"""Who owns a new Neutron resource, and what it gets by default: an admin creates in
another project by naming it, nobody else may; a project's default QoS policy lands on its
new networks; the body is validated before the caller is checked; a rule create on a
policy the caller may not change is 403 (neutron-tempest-plugin's test_qos expectations)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.test_api import member_token, token

NET = "/networking/v2.0"
QOS = f"{NET}/qos/policies"
TENANT = "tenant-project"


def _policy(client: TestClient, h: dict[str, str], **fields: object) -> str:
    r = client.post(QOS, headers=h, json={"policy": {"name": "p", **fields}})
    assert r.status_code == 201, r.text
    ident: str = r.json()["policy"]["id"]
    return ident


def test_an_admin_creates_a_network_in_another_project_with_its_own_policy(
    client: TestClient,
) -> None:
    admin = token(client)
    member = member_token(client, TENANT)
    private = _policy(client, admin)  # the admin's, not shared
    r = client.post(
        f"{NET}/networks",
        headers=admin,
        json={"network": {"name": "for-tenant", "project_id": TENANT, "qos_policy_id": private}},
    )
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    assert (net["project_id"], net["qos_policy_id"]) == (TENANT, private)
    # The member sees the network and puts a port on it; the port inherits nothing it can
    # change, and naming the admin's policy itself stays refused.
    assert client.get(f"{NET}/networks/{net['id']}", headers=member).status_code == 200
    port = client.post(f"{NET}/ports", headers=member, json={"port": {"network_id": net["id"]}})
    assert port.status_code == 201, port.text
    assert port.json()["port"]["project_id"] == TENANT
    named = client.post(
        f"{NET}/ports",
        headers=member,
        json={"port": {"network_id": net["id"], "qos_policy_id": private}},
    )
    assert named.status_code == 404


def test_only_an_admin_creates_in_another_project(client: TestClient) -> None:
    member = member_token(client, TENANT)
    for path, kind in (("networks", "network"), ("ports", "port")):
        body: dict[str, object] = {"project_id": "someone-else"}
        if kind == "port":
            net = client.post(f"{NET}/networks", headers=member, json={"network": {}})
            body["network_id"] = net.json()["network"]["id"]
        r = client.post(f"{NET}/{path}", headers=member, json={kind: body})
        assert r.status_code == 403, (path, r.text)
    mine = client.post(f"{NET}/networks", headers=member, json={"network": {"project_id": TENANT}})
    assert mine.status_code == 201
    both = {"project_id": TENANT, "tenant_id": "other"}
    assert client.post(f"{NET}/networks", headers=member, json={"network": both}).status_code == 400


def test_a_projects_default_policy_lands_on_its_new_networks(client: TestClient) -> None:
    admin = token(client)
    member = member_token(client, TENANT)
    default = _policy(client, admin, project_id=TENANT, is_default=True)
    other = _policy(client, admin, project_id=TENANT, name="other")
    by_admin = client.post(
        f"{NET}/networks", headers=admin, json={"network": {"project_id": TENANT}}
    )
    assert by_admin.json()["network"]["qos_policy_id"] == default
    by_member = client.post(f"{NET}/networks", headers=member, json={"network": {}})
    assert by_member.json()["network"]["qos_policy_id"] == default
    chosen = client.post(
        f"{NET}/networks",
        headers=admin,
        json={"network": {"project_id": TENANT, "qos_policy_id": other}},
    )
    assert chosen.json()["network"]["qos_policy_id"] == other
    # The admin's own project has no default: its networks get none.
    plain = client.post(f"{NET}/networks", headers=admin, json={"network": {}})
    assert plain.json()["network"]["qos_policy_id"] is None


def test_the_body_is_checked_before_the_caller(client: TestClient) -> None:
    admin = token(client)
    member = member_token(client, TENANT)
    foreign = _policy(client, admin)
    long_project = client.post(
        QOS, headers=member, json={"policy": {"name": "x", "project_id": "p" * 256}}
    )
    assert long_project.status_code == 400
    assert "policy.project_id" in long_project.json()["NeutronError"]["message"]
    for field in ("name", "description"):
        r = client.put(f"{QOS}/{foreign}", headers=member, json={"policy": {field: "n" * 256}})
        assert r.status_code == 400, (field, r.text)
    # A valid body on the same policy: the caller cannot see it.
    assert (
        client.put(f"{QOS}/{foreign}", headers=member, json={"policy": {"name": "n"}}).status_code
        == 404
    )


def test_a_rule_create_the_caller_may_not_make_is_403_and_on_no_policy_404(
    client: TestClient,
) -> None:
    admin = token(client)
    member = member_token(client, TENANT)
    foreign = _policy(client, admin)
    rule = {"bandwidth_limit_rule": {"max_kbps": 1, "max_burst_kbps": 2}}
    r = client.post(f"{QOS}/{foreign}/bandwidth_limit_rules", headers=member, json=rule)
    assert r.status_code == 403
    assert client.get(f"{QOS}/{foreign}", headers=admin).json()["policy"]["rules"] == []
    r = client.post(f"{QOS}/no-such-policy/bandwidth_limit_rules", headers=member, json=rule)
    assert r.status_code == 404
