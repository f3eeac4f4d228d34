"""Who sees what: private flavors and their access lists, images by visibility, security
groups per project, keypairs per user."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_api import NOVA, make_network, member_token, token

FLAVORS = "/compute/v2.1/flavors"


def private_flavor(client: TestClient, h: dict[str, str], name: str = "p1") -> str:
    r = client.post(
        FLAVORS,
        headers={**h, **NOVA},
        json={
            "flavor": {"name": name, "ram": 512, "vcpus": 1, "os-flavor-access:is_public": False}
        },
    )
    assert r.status_code == 200, r.text
    fid: str = r.json()["flavor"]["id"]
    return fid


def boot(client: TestClient, h: dict[str, str], flavor: str, net: str, **extra: Any) -> Any:
    return client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={"server": {"name": "vm", "flavorRef": flavor, "networks": [{"uuid": net}], **extra}},
    )


def test_private_flavors_are_seen_and_used_only_with_access(client: TestClient) -> None:
    h = token(client)
    fid = private_flavor(client, h)
    m = member_token(client, "tenant-project")
    assert client.get(f"{FLAVORS}/{fid}", headers=m).status_code == 404
    assert fid not in {
        f["id"] for f in client.get(f"{FLAVORS}/detail", headers=m).json()["flavors"]
    }
    assert fid not in {f["id"] for f in client.get(FLAVORS, headers=h).json()["flavors"]}
    admin_all = client.get(f"{FLAVORS}?is_public=none", headers=h).json()["flavors"]
    assert fid in {f["id"] for f in admin_all}
    net = make_network(client, m, name="tenant-net")
    refused = boot(client, m, fid, net)
    assert refused.status_code == 400
    assert "server.flavorRef" in refused.json()["badRequest"]["message"]

    action = f"{FLAVORS}/{fid}/action"
    denied = client.post(action, headers=m, json={"addTenantAccess": {"tenant": "tenant-project"}})
    assert denied.status_code == 403
    added = client.post(action, headers=h, json={"addTenantAccess": {"tenant": "tenant-project"}})
    assert added.json()["flavor_access"] == [{"flavor_id": fid, "tenant_id": "tenant-project"}]
    again = client.post(action, headers=h, json={"addTenantAccess": {"tenant": "tenant-project"}})
    assert again.status_code == 409
    assert client.get(f"{FLAVORS}/{fid}", headers=m).status_code == 200
    assert boot(client, m, fid, net).status_code == 202
    listed = client.get(f"{FLAVORS}/{fid}/os-flavor-access", headers=h).json()
    assert listed["flavor_access"][0]["tenant_id"] == "tenant-project"

    removed = client.post(
        action, headers=h, json={"removeTenantAccess": {"tenant": "tenant-project"}}
    )
    assert removed.json()["flavor_access"] == []
    gone = client.post(action, headers=h, json={"removeTenantAccess": {"tenant": "tenant-project"}})
    assert gone.status_code == 404
    assert client.get(f"{FLAVORS}/{fid}", headers=m).status_code == 404

    public = client.get(f"{FLAVORS}?is_public=true", headers=h).json()["flavors"]
    assert fid not in {f["id"] for f in public}
    bad = client.post(action, headers=h, json={"grantEverything": {}})
    assert bad.status_code == 400


def test_a_public_flavor_has_no_access_list(client: TestClient) -> None:
    h = token(client)
    r = client.post(
        FLAVORS, headers=h, json={"flavor": {"name": "pub", "ram": 512, "vcpus": 1}}
    ).json()["flavor"]
    assert client.get(f"{FLAVORS}/{r['id']}/os-flavor-access", headers=h).status_code == 404
    add = client.post(
        f"{FLAVORS}/{r['id']}/action", headers=h, json={"addTenantAccess": {"tenant": "x"}}
    )
    assert add.status_code == 409
    assert "public flavor" in add.json()["conflictingRequest"]["message"]


def test_images_follow_glance_visibility(client: TestClient) -> None:
    h = token(client)
    m = member_token(client, "tenant-project")
    shared = client.post("/image/v2/images", headers=h, json={"name": "admin-img"}).json()
    public = client.post(
        "/image/v2/images", headers=h, json={"name": "pub-img", "visibility": "public"}
    ).json()
    names = {i["name"] for i in client.get("/image/v2/images", headers=m).json()["images"]}
    assert names == {"pub-img"}
    assert client.get(f"/image/v2/images/{shared['id']}", headers=m).status_code == 404
    assert client.get(f"/image/v2/images/{public['id']}", headers=m).status_code == 200
    assert client.delete(f"/image/v2/images/{public['id']}", headers=m).status_code == 403
    publicize = client.post(
        "/image/v2/images", headers=m, json={"name": "mine", "visibility": "public"}
    )
    assert publicize.status_code == 403
    bad = client.post("/image/v2/images", headers=m, json={"name": "x", "visibility": "everyone"})
    assert bad.status_code == 400
    net = make_network(client, m, name="tenant-net")
    fid = client.post(
        FLAVORS, headers=h, json={"flavor": {"name": "f", "ram": 512, "vcpus": 1}}
    ).json()["flavor"]["id"]
    hidden = boot(client, m, fid, net, imageRef=shared["id"])
    assert hidden.status_code == 400
    assert "server.imageRef" in hidden.json()["badRequest"]["message"]
    assert boot(client, m, fid, net, imageRef=public["id"]).status_code == 202


def test_security_groups_are_per_project_and_keypairs_per_user(client: TestClient) -> None:
    h = token(client)
    m = member_token(client, "tenant-project")
    client.post(
        "/networking/v2.0/security-groups", headers=h, json={"security_group": {"name": "sg_admin"}}
    )
    sgs = client.get("/networking/v2.0/security-groups", headers=m).json()["security_groups"]
    assert sgs == []
    for headers in (h, m):  # the same name for two users is fine, twice for one is not
        made = client.post(
            "/compute/v2.1/os-keypairs", headers=headers, json={"keypair": {"name": "k"}}
        )
        assert made.status_code == 200
    dup = client.post("/compute/v2.1/os-keypairs", headers=m, json={"keypair": {"name": "k"}})
    assert dup.status_code == 409
    client.post("/compute/v2.1/os-keypairs", headers=h, json={"keypair": {"name": "admins-only"}})
    mine = client.get("/compute/v2.1/os-keypairs", headers=m).json()["keypairs"]
    assert [k["keypair"]["user_id"] for k in mine] == ["member-id"]
    assert client.get("/compute/v2.1/os-keypairs/admins-only", headers=m).status_code == 404
    net = make_network(client, m, name="tenant-net")
    fid = client.post(
        FLAVORS, headers=h, json={"flavor": {"name": "f", "ram": 512, "vcpus": 1}}
    ).json()["flavor"]["id"]
    other_key = boot(client, m, fid, net, key_name="admins-only")
    assert other_key.status_code == 400
    assert "server.key_name" in other_key.json()["badRequest"]["message"]
    other_sg = boot(client, m, fid, net, security_groups=[{"name": "sg_admin"}])
    assert other_sg.status_code == 400
    assert client.delete("/compute/v2.1/os-keypairs/k", headers=m).status_code == 202
    assert client.get("/compute/v2.1/os-keypairs/k", headers=h).status_code == 200


def test_a_flavor_in_use_cannot_be_deleted(client: TestClient) -> None:
    h = token(client)
    fid = client.post(
        FLAVORS, headers=h, json={"flavor": {"name": "used", "ram": 512, "vcpus": 1}}
    ).json()["flavor"]["id"]
    server = boot(client, h, fid, make_network(client, h)).json()["server"]
    busy = client.delete(f"{FLAVORS}/{fid}", headers=h)
    assert busy.status_code == 409
    assert "used by servers vm" in busy.json()["conflictingRequest"]["message"]
    assert client.delete(f"/compute/v2.1/servers/{server['id']}", headers=h).status_code == 204
    assert client.delete(f"{FLAVORS}/{fid}", headers=h).status_code == 202


def test_a_body_that_is_not_utf8_is_400(client: TestClient) -> None:
    r = client.post(
        "/networking/v2.0/qos/policies",
        headers={**token(client), "Content-Type": "application/json"},
        content=b"\x80\x81",
    )
    assert r.status_code == 400
    assert r.json()["NeutronError"]["message"].startswith("body")


def test_values_beyond_the_columns_are_400_not_500(
    client: TestClient, request: pytest.FixtureRequest
) -> None:
    """Handlers check the lengths they know; what slips through (here a 40-character
    flavor id, which Nova allows and this schema stores in 36) is refused by PostgreSQL,
    and the store turns that into a 400 naming the column instead of a 500."""
    h = token(client)
    long_description = client.post(
        "/identity/v3/projects",
        headers=h,
        json={"project": {"name": "p", "description": "*" * 300}},
    )
    assert long_description.status_code == 400
    assert long_description.json()["error"]["message"].startswith("project.description")
    flavor = client.post(
        FLAVORS,
        headers=h,
        json={"flavor": {"name": "long-id", "ram": 1, "vcpus": 1, "id": "f" * 40}},
    )
    if request.node.callspec.params["client"] == "postgresql":
        assert flavor.status_code == 400
        message = flavor.json()["badRequest"]["message"]
        assert message.startswith("id: value too long for type character varying(36)")
    else:
        assert flavor.status_code == 200  # SQLite stores it whole


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"identity": True}, "auth.identity"),
        ({"identity": {"methods": ["password"], "password": []}}, "auth.identity.password"),
        (
            {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "admin", "password": "s3cret"}},
                },
                "scope": {"project": {"name": 5}},
            },
            "auth.scope.project.name",
        ),
    ],
)
def test_malformed_auth_bodies_are_400(
    client: TestClient, auth: dict[str, Any], field: str
) -> None:
    """Found by schemathesis: a non-object where Keystone expects one was a 500."""
    r = client.post("/identity/v3/auth/tokens", json={"auth": auth})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(field)
