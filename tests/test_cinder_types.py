"""Cinder's volume type API as tempest checks it: update, delete (refused while in use),
extra specs, private types hidden from projects, and the shapes of each response
(cinder/api/contrib/types_manage.py, types_extra_specs.py, cinder/api/v2/types.py)."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from tests.conftest import ADMIN, token_for
from tests.test_api import member_token, token

V = f"/volume/v3/{ADMIN.project_id}"


def test_a_type_is_created_updated_and_deleted_with_its_extra_specs(client: TestClient) -> None:
    h = token(client)
    body = {"volume_type": {"name": "gold", "extra_specs": {"volume_backend_name": "lvm"}}}
    made = client.post(f"{V}/types", headers=h, json=body).json()["volume_type"]
    assert "qos_specs_id" not in made  # not in Cinder's create view
    assert made["extra_specs"] == {"volume_backend_name": "lvm"}
    tid = made["id"]
    shown = client.get(f"{V}/types/{tid}", headers=h).json()["volume_type"]
    assert shown["qos_specs_id"] is None
    assert shown["extra_specs"] == {"volume_backend_name": "lvm"}
    r = client.put(
        f"{V}/types/{tid}", headers=h, json={"volume_type": {"name": "gold-2", "is_public": False}}
    )
    assert r.status_code == 200
    updated = r.json()["volume_type"]
    assert (updated["name"], updated["is_public"]) == ("gold-2", False)
    assert "os-volume-type-access:is_public" not in updated
    assert client.put(f"{V}/types/{tid}", headers=h, json={"volume_type": {}}).status_code == 400

    specs = f"{V}/types/{tid}/extra_specs"
    added = client.post(specs, headers=h, json={"extra_specs": {"a": "1", "b": "2"}})
    assert added.json() == {"extra_specs": {"a": "1", "b": "2"}}
    assert client.get(specs, headers=h).json()["extra_specs"] == {
        "a": "1",
        "b": "2",
        "volume_backend_name": "lvm",
    }
    assert client.put(f"{specs}/a", headers=h, json={"a": "9"}).json() == {"a": "9"}
    assert client.get(f"{specs}/a", headers=h).json() == {"a": "9"}
    assert client.put(f"{specs}/a", headers=h, json={"b": "9"}).status_code == 400
    assert client.put(f"{specs}/a", headers=h, json={"a": "1", "b": "1"}).status_code == 400
    assert client.post(specs, headers=h, json={"extra_specs": ["x"]}).status_code == 400
    assert client.delete(f"{specs}/a", headers=h).status_code == 202
    assert client.get(f"{specs}/a", headers=h).status_code == 404
    assert client.delete(f"{specs}/a", headers=h).status_code == 404
    assert client.get(f"{V}/types/nope/extra_specs", headers=h).status_code == 404

    assert client.delete(f"{V}/types/{tid}", headers=h).status_code == 202
    assert client.get(f"{V}/types/{tid}", headers=h).status_code == 404
    assert client.delete(f"{V}/types/{tid}", headers=h).status_code == 404


def test_a_type_in_use_is_not_deleted(client: TestClient) -> None:
    h = token(client)
    tid = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": "t"}}).json()[
        "volume_type"
    ]["id"]
    vol = client.post(f"{V}/volumes", headers=h, json={"volume": {"size": 1, "volume_type": tid}})
    assert vol.status_code == 202
    r = client.delete(f"{V}/types/{tid}", headers=h)
    assert r.status_code == 400
    assert "still in use" in r.json()["badRequest"]["message"]
    client.delete(f"{V}/volumes/{vol.json()['volume']['id']}", headers=h)
    assert client.delete(f"{V}/types/{tid}", headers=h).status_code == 202


def test_private_types_exist_for_admins_only_and_types_are_theirs_to_change(
    client: TestClient,
) -> None:
    h = token(client)
    body = {"volume_type": {"name": "secret", "os-volume-type-access:is_public": False}}
    tid = client.post(f"{V}/types", headers=h, json=body).json()["volume_type"]["id"]
    m = member_token(client, ADMIN.project_id)
    assert client.get(f"{V}/types/{tid}", headers=m).status_code == 404
    listed = client.get(f"{V}/types?is_public=none", headers=m).json()["volume_types"]
    assert tid not in [t["id"] for t in listed]
    admin_listed = client.get(f"{V}/types?is_public=none", headers=h).json()["volume_types"]
    assert tid in [t["id"] for t in admin_listed]
    r = client.post(f"{V}/volumes", headers=m, json={"volume": {"size": 1, "volume_type": tid}})
    assert r.status_code == 404
    for method, path, payload in (
        ("PUT", f"{V}/types/{tid}", {"volume_type": {"name": "x"}}),
        ("DELETE", f"{V}/types/{tid}", None),
        ("POST", f"{V}/types/{tid}/extra_specs", {"extra_specs": {"k": "v"}}),
        ("GET", f"{V}/types/{tid}/extra_specs", None),
    ):
        assert client.request(method, path, headers=m, json=payload).status_code == 403


def test_volume_views_follow_the_microversion_and_the_role(client: TestClient) -> None:
    h = token(client)
    made = client.post(f"{V}/volumes", headers=h, json={"volume": {"size": 1}}).json()["volume"]
    assert "os-vol-tenant-attr:tenant_id" not in made
    assert "volume_type_id" not in made
    shown = client.get(f"{V}/volumes/{made['id']}", headers=h).json()["volume"]
    assert shown["os-vol-tenant-attr:tenant_id"] == ADMIN.project_id
    new = {**h, "OpenStack-API-Version": "volume 3.63"}
    assert "volume_type_id" in client.get(f"{V}/volumes/{made['id']}", headers=new).json()["volume"]
    bad = {**h, "OpenStack-API-Version": "volume 3.99"}
    assert client.get(f"{V}/volumes/{made['id']}", headers=bad).status_code == 400
    m = member_token(client, ADMIN.project_id)
    mine = client.post(f"{V}/volumes", headers=m, json={"volume": {"size": 1}}).json()["volume"]
    as_member = client.get(f"{V}/volumes/{mine['id']}", headers=m).json()["volume"]
    assert "os-vol-tenant-attr:tenant_id" not in as_member


def test_a_qos_spec_carries_its_links_beside_it(client: TestClient) -> None:
    h = token(client)
    body = {"qos_specs": {"name": "s", "consumer": "front-end", "read_iops_sec": "100"}}
    r = client.post(f"{V}/qos-specs", headers=h, json=body).json()
    assert "links" not in r["qos_specs"]
    assert {link["rel"] for link in r["links"]} == {"self", "bookmark"}
    shown = client.get(f"{V}/qos-specs/{r['qos_specs']['id']}", headers=h).json()
    assert shown["links"][0]["href"].endswith(f"/qos-specs/{r['qos_specs']['id']}")
    listed = client.get(f"{V}/qos-specs", headers=h).json()["qos_specs"]
    assert "links" not in listed[0]


def _read_iops_in_plan(client: TestClient, h: dict[str, str], server_id: str) -> list[str]:
    import re

    plan = client.get(f"/qosplane/v1/servers/{server_id}/plan", headers=h).json()["plan"]
    return re.findall(r"<read_iops_sec>(\d+)</read_iops_sec>", json.dumps(plan))


def test_extending_or_retyping_an_attached_volume_retunes_its_server(client: TestClient) -> None:
    """Cinder freezes per-GB values at attach; qosplane recompiles the server's plan, so
    the new size and the new type's spec reach the running guest (README)."""
    from tests.test_api import make_network, make_server

    h = token(client)

    def typed(name: str, spec: dict[str, str]) -> str:
        body = {"qos_specs": {"name": name, "consumer": "front-end", **spec}}
        sid = client.post(f"{V}/qos-specs", headers=h, json=body).json()["qos_specs"]["id"]
        made = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": name}})
        tid: str = made.json()["volume_type"]["id"]
        client.get(f"{V}/qos-specs/{sid}/associate?vol_type_id={tid}", headers=h)
        return tid

    per_gb = typed("per-gb", {"read_iops_sec_per_gb": "50"})
    flat = typed("flat", {"read_iops_sec": "700"})
    server = make_server(client, h, [make_network(client, h)])
    vol = client.post(
        f"{V}/volumes", headers=h, json={"volume": {"size": 2, "volume_type": per_gb}}
    ).json()["volume"]
    attach = {"volumeAttachment": {"volumeId": vol["id"]}}
    client.post(
        f"/compute/v2.1/servers/{server['id']}/os-volume_attachments", headers=h, json=attach
    )
    assert _read_iops_in_plan(client, h, server["id"]) == ["100"]
    action = f"{V}/volumes/{vol['id']}/action"
    assert client.post(action, headers=h, json={"os-extend": {"new_size": 5}}).status_code == 202
    assert client.get(f"{V}/volumes/{vol['id']}", headers=h).json()["volume"]["size"] == 5
    assert _read_iops_in_plan(client, h, server["id"]) == ["250"]
    assert client.post(action, headers=h, json={"os-retype": {"new_type": flat}}).status_code == 202
    assert (
        client.get(f"{V}/volumes/{vol['id']}", headers=h).json()["volume"]["volume_type"] == "flat"
    )
    assert _read_iops_in_plan(client, h, server["id"]) == ["700"]
    for body, status in (
        ({"os-extend": {"new_size": 5}}, 400),  # not larger
        ({"os-extend": {"new_size": "6"}}, 400),
        ({"os-retype": {"new_type": flat}}, 400),  # the same type
        ({"os-retype": {"new_type": "nope"}}, 404),
        ({"os-retype": {"new_type": per_gb, "migration_policy": "sometimes"}}, 400),
        ({"os-detach": {}}, 400),
    ):
        r = client.post(action, headers=h, json=body)
        assert r.status_code == status, (body, r.text)
    assert _read_iops_in_plan(client, h, server["id"]) == ["700"]


def test_only_the_owners_members_act_on_a_volume(client: TestClient) -> None:
    h = token(client)
    m = member_token(client, "tenant-project")
    vol = client.post(f"{V}/volumes", headers=m, json={"volume": {"size": 1}}).json()["volume"]
    reader = token_for(client, "r-id", "r", "tenant-project", "tenant", ("reader",))
    other = token_for(client, "o-id", "o", "other-project", "other", ("member",))
    extend = {"os-extend": {"new_size": 2}}
    assert (
        client.post(f"{V}/volumes/{vol['id']}/action", headers=reader, json=extend).status_code
        == 403
    )
    assert (
        client.post(f"{V}/volumes/{vol['id']}/action", headers=other, json=extend).status_code
        == 404
    )
    assert client.post(f"{V}/volumes/{vol['id']}/action", headers=m, json=extend).status_code == 202
    assert client.get(f"{V}/volumes/{vol['id']}", headers=h).json()["volume"]["size"] == 2


def test_encryption_specs_follow_the_types_life_and_stay_put_under_volumes(
    client: TestClient,
) -> None:
    """cinder/api/contrib/volume_type_encryption.py: one set per type, {} when none, each
    item readable, and no change while a volume has the type."""
    h = token(client)
    tid = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": "enc"}}).json()[
        "volume_type"
    ]["id"]
    enc = f"{V}/types/{tid}/encryption"
    assert client.get(enc, headers=h).json() == {}
    spec = {
        "provider": "luks",
        "cipher": "aes-xts-plain64",
        "key_size": 256,
        "control_location": "front-end",
    }
    made = client.post(enc, headers=h, json={"encryption": spec})
    assert made.status_code == 200, made.text
    body = made.json()["encryption"]
    assert {k: body[k] for k in spec} == spec
    assert body["volume_type_id"] == tid
    assert set(body) == {*spec, "volume_type_id", "encryption_id"}  # Cinder's create view
    eid = body["encryption_id"]
    shown = client.get(enc, headers=h).json()
    assert {"created_at", "updated_at", "deleted", "deleted_at"} <= set(shown)
    again = client.post(enc, headers=h, json={"encryption": spec})
    assert again.status_code == 400
    assert "already exists" in again.text
    for bad, field in (
        ({"provider": "luks", "control_location": "middle"}, "control_location"),
        ({"provider": "luks", "control_location": "front-end", "key_size": -1}, "key_size"),
        ({"control_location": "front-end"}, "provider"),
        ({"provider": "luks", "control_location": "front-end", "colour": 1}, "colour"),
    ):
        other = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": f"e-{field}"}})
        r = client.post(
            f"{V}/types/{other.json()['volume_type']['id']}/encryption",
            headers=h,
            json={"encryption": bad},
        )
        assert r.status_code == 400, (bad, r.text)
        assert f"encryption.{field}" in r.json()["badRequest"]["message"]
    r = client.put(f"{enc}/{eid}", headers=h, json={"encryption": {"key_size": 128}})
    assert r.status_code == 200
    assert r.json() == {"encryption": {"key_size": 128}}
    assert client.get(f"{enc}/key_size", headers=h).json() == {"key_size": 128}
    assert client.get(f"{enc}/nothing", headers=h).status_code == 404
    # Cinder ignores the id in the path: python-cinderclient sends a spec name there.
    by_name = client.put(f"{enc}/provider", headers=h, json={"encryption": {"cipher": None}})
    assert by_name.status_code == 200, by_name.text
    assert client.get(enc, headers=h).json()["cipher"] is None
    # A member neither reads nor changes them.
    member = member_token(client, "enc-project")
    assert client.get(enc, headers=member).status_code == 403
    assert client.delete(f"{enc}/{eid}", headers=member).status_code == 403
    # Under a volume of the type they cannot change.
    vol = client.post(f"{V}/volumes", headers=h, json={"volume": {"size": 1, "volume_type": tid}})
    assert vol.status_code == 202
    refused = client.delete(f"{enc}/{eid}", headers=h)
    assert refused.status_code == 400
    assert "in use" in refused.text
    changed = client.put(f"{enc}/{eid}", headers=h, json={"encryption": {"key_size": 512}})
    assert changed.status_code == 400
    assert "Cannot update" in changed.text
    assert client.get(enc, headers=h).json()["key_size"] == 128
    busy = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": "enc-busy"}})
    busy_id = busy.json()["volume_type"]["id"]
    on_busy = client.post(
        f"{V}/volumes", headers=h, json={"volume": {"size": 1, "volume_type": busy_id}}
    )
    assert on_busy.status_code == 202
    late = client.post(f"{V}/types/{busy_id}/encryption", headers=h, json={"encryption": spec})
    assert late.status_code == 400
    assert "Cannot create" in late.text
    client.delete(f"{V}/volumes/{on_busy.json()['volume']['id']}", headers=h)
    client.delete(f"{V}/volumes/{vol.json()['volume']['id']}", headers=h)
    assert client.delete(f"{enc}/{eid}", headers=h).status_code == 202
    assert client.get(enc, headers=h).json() == {}


def test_only_an_admin_sees_a_types_qos_specs_id(client: TestClient) -> None:
    """cinder/api/v2/views/types.py shows qos_specs_id in list and show only where
    `volume_extension:access_types_qos_specs_id` (admin_api) allows."""
    h = token(client)
    made = client.post(f"{V}/types", headers=h, json={"volume_type": {"name": "qt"}})
    tid = made.json()["volume_type"]["id"]
    spec = client.post(
        f"{V}/qos-specs", headers=h, json={"qos_specs": {"name": "qs", "consumer": "front-end"}}
    ).json()["qos_specs"]
    assert (
        client.get(f"{V}/qos-specs/{spec['id']}/associate?vol_type_id={tid}", headers=h).status_code
        == 202
    )
    assert (
        client.get(f"{V}/types/{tid}", headers=h).json()["volume_type"]["qos_specs_id"]
        == spec["id"]
    )
    listed = client.get(f"{V}/types", headers=h).json()["volume_types"]
    assert [t["qos_specs_id"] for t in listed if t["id"] == tid] == [spec["id"]]
    member = member_token(client)
    shown = client.get(f"{V}/types/{tid}", headers=member).json()["volume_type"]
    assert "qos_specs_id" not in shown
    assert shown["name"] == "qt"
    listed = client.get(f"{V}/types", headers=member).json()["volume_types"]
    assert all("qos_specs_id" not in t for t in listed)
