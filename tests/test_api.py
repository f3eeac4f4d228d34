"""The API in-process (httpx over ASGI) on SQLite: every endpoint of this slice and its
error paths, in each service's own error shape."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from qosplane.api.app import build_app
from qosplane.api.auth import Context, TokenSigner, utcnow
from qosplane.store.database import make_engine, sqlite_url, upgrade
from tests.conftest import SECRET, services_of, token_for
from tests.serving import free_port

NOVA = {"OpenStack-API-Version": "compute 2.96"}


def token(client: TestClient) -> dict[str, str]:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "password": "s3cret", "domain": {"name": "Default"}}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
        }
    }
    r = client.post("/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201
    return {"X-Auth-Token": r.headers["X-Subject-Token"]}


def member_token(client: TestClient, project: str = "tenant-project") -> dict[str, str]:
    """Alice, a member of `project` (named "tenant" when it is new)."""
    return token_for(client, "member-id", "alice", project, "tenant", ("member",))


def neutron_error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["NeutronError"]
    return body


# --- identity --------------------------------------------------------------------------


def test_discovery_documents_need_no_token(client: TestClient) -> None:
    assert client.get("/identity/v3").json()["version"]["id"] == "v3.14"
    r = client.get("/identity")
    assert r.status_code == 300
    assert r.json()["versions"]["values"][0]["status"] == "stable"
    doc = client.get("/compute/v2.1").json()["version"]
    assert (doc["min_version"], doc["version"]) == ("2.1", "2.96")
    assert client.get("/networking/").json()["versions"][0]["id"] == "v2.0"


def test_token_carries_catalog_and_expiry(client: TestClient) -> None:
    headers = token(client)
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "admin", "password": "s3cret"}},
            }
        }
    }
    data = client.post("/identity/v3/auth/tokens", json=body).json()["token"]
    assert {s["type"] for s in data["catalog"]} == {
        "identity",
        "compute",
        "network",
        "image",
        "block-storage",
        "volumev3",
    }
    assert data["expires_at"].endswith("Z")
    assert client.get("/compute/v2.1/flavors/detail", headers=headers).status_code == 200


@pytest.mark.parametrize("password", ["wrong", ""])
def test_bad_password_is_401_in_keystone_shape(client: TestClient, password: str) -> None:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "admin", "password": password}},
            }
        }
    }
    r = client.post("/identity/v3/auth/tokens", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401


@pytest.mark.parametrize("bad", [None, "garbage", "a.b", "x" * 10 + "." + "y" * 10])
def test_missing_or_forged_token_is_401(client: TestClient, bad: str | None) -> None:
    headers = {} if bad is None else {"X-Auth-Token": bad}
    r = client.get("/networking/v2.0/qos/policies", headers=headers)
    assert r.status_code == 401
    assert neutron_error(r)["type"] == "HTTPUnauthorized"


def test_expired_token_is_401(client: TestClient) -> None:
    ctx = Context("u", "admin", "p", "admin", ("admin",), utcnow() - timedelta(seconds=1))
    r = client.get(
        "/compute/v2.1/flavors/detail", headers={"X-Auth-Token": TokenSigner(SECRET).issue(ctx)}
    )
    assert r.status_code == 401
    assert "expired" in r.json()["unauthorized"]["message"]


# --- compute ---------------------------------------------------------------------------


def make_flavor(client: TestClient, headers: dict[str, str], name: str = "m1.resquota") -> str:
    r = client.post(
        "/compute/v2.1/flavors",
        headers={**headers, **NOVA},
        json={
            "flavor": {
                "name": name,
                "ram": 1024,
                "vcpus": 1,
                "disk": 20,
                "id": None,
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "swap": 0,
                "os-flavor-access:is_public": True,
            }
        },
    )
    assert r.status_code == 200, r.text
    flavor_id: str = r.json()["flavor"]["id"]
    return flavor_id


def test_flavor_lifecycle_and_extra_specs(client: TestClient) -> None:
    h = token(client)
    fid = make_flavor(client, h)
    specs = {"quota:cpu_shares": "512", "quota:vif_inbound_burst": "131072"}
    r = client.post(
        f"/compute/v2.1/flavors/{fid}/os-extra_specs", headers=h, json={"extra_specs": specs}
    )
    assert r.json() == {"extra_specs": specs}
    shown = client.get(f"/compute/v2.1/flavors/{fid}", headers={**h, **NOVA}).json()["flavor"]
    assert shown["extra_specs"] == specs
    assert shown["swap"] == 0
    old = client.get(f"/compute/v2.1/flavors/{fid}", headers=h).json()["flavor"]
    assert "extra_specs" not in old  # below 2.61 the specs are not embedded
    assert old["swap"] == ""
    r = client.delete(f"/compute/v2.1/flavors/{fid}/os-extra_specs/quota:cpu_shares", headers=h)
    assert r.status_code == 200
    r = client.delete(f"/compute/v2.1/flavors/{fid}/os-extra_specs/quota:cpu_shares", headers=h)
    assert r.status_code == 404
    assert client.delete(f"/compute/v2.1/flavors/{fid}", headers=h).status_code == 202
    assert client.get(f"/compute/v2.1/flavors/{fid}", headers=h).status_code == 404


def test_flavor_lookup_by_name_on_the_id_path_is_404(client: TestClient) -> None:
    h = token(client)
    make_flavor(client, h)
    r = client.get("/compute/v2.1/flavors/m1.resquota", headers=h)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["code"] == 404
    listing = client.get("/compute/v2.1/flavors/detail?is_public=None", headers=h).json()
    assert [f["name"] for f in listing["flavors"]] == ["m1.resquota"]


def test_invalid_extra_spec_is_400_and_nothing_is_written(client: TestClient) -> None:
    h = token(client)
    fid = make_flavor(client, h)
    for specs, needle in [
        ({"quota:cpu_shares": "512", "quota:cpu_sharez": "1"}, "quota:cpu_sharez"),
        ({"quota:cpu_shares": "-1"}, "an integer from 0 to 262144"),
        ({"quota:cpu_shares": str(2**63)}, "an integer from 0 to 262144"),  # no host takes it
        ({"quota:vif_inbound_average": str(2**64)}, "an integer from 0 to 4294967295"),
        ({"quota:vif_inbound_average": "fast"}, "not an integer"),
    ]:
        r = client.post(
            f"/compute/v2.1/flavors/{fid}/os-extra_specs", headers=h, json={"extra_specs": specs}
        )
        assert r.status_code == 400
        assert needle in r.json()["badRequest"]["message"]
    assert client.get(f"/compute/v2.1/flavors/{fid}/os-extra_specs", headers=h).json() == {
        "extra_specs": {}
    }


def test_member_may_read_but_not_write_flavors(client: TestClient) -> None:
    fid = make_flavor(client, token(client))
    m = member_token(client)
    assert client.get(f"/compute/v2.1/flavors/{fid}", headers=m).status_code == 200
    r = client.post(
        f"/compute/v2.1/flavors/{fid}/os-extra_specs",
        headers=m,
        json={"extra_specs": {"quota:cpu_shares": "512"}},
    )
    assert r.status_code == 403
    assert "os-flavor-extra-specs:create" in r.json()["forbidden"]["message"]
    assert (
        client.post(
            "/compute/v2.1/flavors", headers=m, json={"flavor": {"name": "x", "ram": 1, "vcpus": 1}}
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"flavor": {"name": "", "ram": 1, "vcpus": 1}}, "flavor.name"),
        ({"flavor": {"name": "x", "ram": "lots", "vcpus": 1}}, "flavor.ram"),
        ({"flavor": {"name": "x", "ram": 1, "vcpus": 0}}, "flavor.vcpus"),
        ({"flavor": {"name": "x", "ram": 1}}, "flavor.vcpus"),
        ({"flavour": {}}, "flavor"),
        ([1, 2], "body"),
    ],
)
def test_bad_flavor_body_is_400_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    r = client.post("/compute/v2.1/flavors", headers=token(client), json=body)
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"].startswith(field)


def test_malformed_json_and_bad_microversion_are_400(client: TestClient) -> None:
    h = token(client)
    r = client.post(
        "/compute/v2.1/flavors",
        headers={**h, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 400
    r = client.get(
        "/compute/v2.1/flavors/detail", headers={**h, "OpenStack-API-Version": "compute 2.200"}
    )
    assert r.status_code == 400
    assert "2.96" in r.json()["badRequest"]["message"]


# --- network ---------------------------------------------------------------------------

QOS = "/networking/v2.0/qos"


def make_policy(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    r = client.post(
        f"{QOS}/policies", headers=headers, json={"policy": {"name": "bw-limiter", **fields}}
    )
    assert r.status_code == 201, r.text
    policy: dict[str, Any] = r.json()["policy"]
    return policy


def test_policy_with_rules_embedded(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    r = client.post(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules",
        headers=h,
        json={
            "bandwidth_limit_rule": {"max_kbps": 3000, "max_burst_kbps": 300, "direction": "egress"}
        },
    )
    assert r.status_code == 201
    rule = r.json()["bandwidth_limit_rule"]
    assert rule["max_kbps"] == 3000
    assert rule["max_burst_kbps"] == 300
    policy = client.get(f"{QOS}/policies/{pid}", headers=h).json()["policy"]
    assert policy["rules"] == [rule]
    assert rule["type"] == "bandwidth_limit"
    assert policy["revision_number"] == 1
    assert (
        client.get(f"{QOS}/policies?name=bw-limiter", headers=h).json()["policies"][0]["id"] == pid
    )
    assert client.get(f"{QOS}/policies?name=other", headers=h).json()["policies"] == []


def test_second_rule_same_direction_is_409(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    url = f"{QOS}/policies/{pid}/bandwidth_limit_rules"
    assert (
        client.post(url, headers=h, json={"bandwidth_limit_rule": {"max_kbps": 1}}).status_code
        == 201
    )
    r = client.post(
        url, headers=h, json={"bandwidth_limit_rule": {"max_kbps": 2, "direction": "egress"}}
    )
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "QoSRulesConflict"
    ingress = client.post(
        url, headers=h, json={"bandwidth_limit_rule": {"max_kbps": 2, "direction": "ingress"}}
    )
    assert ingress.status_code == 201


@pytest.mark.parametrize(
    ("collection", "rule", "needle"),
    [
        ("dscp_marking_rules", {"dscp_mark": 27}, "allowed: one of 0, 8, 10"),
        ("bandwidth_limit_rules", {"max_kbps": -1}, "an integer from 0 to 2147483647"),
        ("bandwidth_limit_rules", {"max_kbps": 1, "direction": "up"}, "one of egress, ingress"),
        ("bandwidth_limit_rules", {"max_burst_kbps": 1}, "required"),
        ("minimum_bandwidth_rules", {"min_kbps": 1, "colour": "red"}, "unrecognized attribute"),
        ("packet_rate_limit_rules", {"max_kpps": 1, "direction": "any"}, "one of egress, ingress"),
    ],
)
def test_invalid_rules_are_400_naming_the_field(
    client: TestClient, collection: str, rule: dict[str, Any], needle: str
) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    key = collection.removesuffix("s")
    r = client.post(f"{QOS}/policies/{pid}/{collection}", headers=h, json={key: rule})
    assert r.status_code == 400
    err = neutron_error(r)
    assert err["type"] == "HTTPBadRequest"
    assert needle in err["message"]
    assert client.get(f"{QOS}/policies/{pid}", headers=h).json()["policy"]["rules"] == []


def test_min_above_max_is_a_parameter_conflict(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    client.post(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": 1000}},
    )
    r = client.post(
        f"{QOS}/policies/{pid}/minimum_bandwidth_rules",
        headers=h,
        json={"minimum_bandwidth_rule": {"min_kbps": 2000}},
    )
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "QoSRuleParameterConflict"


def test_partial_rule_update_keeps_other_fields(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    rid = client.post(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": 3000, "max_burst_kbps": 300}},
    ).json()["bandwidth_limit_rule"]["id"]
    r = client.put(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules/{rid}",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": 4000}},
    )
    assert r.status_code == 200
    assert r.json()["bandwidth_limit_rule"] == {
        "id": rid,
        "type": "bandwidth_limit",
        "max_kbps": 4000,
        "max_burst_kbps": 300,
        "direction": "egress",
        "qos_policy_id": pid,
    }
    bad = client.put(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules/{rid}",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": "x"}},
    )
    assert bad.status_code == 400
    wrong_type = client.get(f"{QOS}/policies/{pid}/dscp_marking_rules/{rid}", headers=h)
    assert wrong_type.status_code == 404
    assert (
        client.delete(f"{QOS}/policies/{pid}/bandwidth_limit_rules/{rid}", headers=h).status_code
        == 204
    )


def test_if_match_revision_is_412_when_stale(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    r = client.put(
        f"{QOS}/policies/{pid}",
        headers={**h, "If-Match": "revision_number=3"},
        json={"policy": {"description": "x"}},
    )
    assert r.status_code == 412
    ok = client.put(
        f"{QOS}/policies/{pid}",
        headers={**h, "If-Match": "revision_number=0"},
        json={"policy": {"description": "x"}},
    )
    assert ok.json()["policy"]["revision_number"] == 1


def test_one_default_policy_per_project(client: TestClient) -> None:
    h = token(client)
    make_policy(client, h, is_default=True)
    second = make_policy(client, h)
    r = client.put(
        f"{QOS}/policies/{second['id']}", headers=h, json={"policy": {"is_default": True}}
    )
    assert r.status_code == 409


def test_projects_see_own_and_shared_policies_only(client: TestClient) -> None:
    h = token(client)
    private = make_policy(client, h)
    shared = make_policy(client, h, shared=True)
    m = member_token(client)
    listed = {p["id"] for p in client.get(f"{QOS}/policies", headers=m).json()["policies"]}
    assert listed == {shared["id"]}
    assert client.get(f"{QOS}/policies/{private['id']}", headers=m).status_code == 404
    r = client.delete(f"{QOS}/policies/{shared['id']}", headers=m)
    assert r.status_code == 403


def test_rule_types(client: TestClient) -> None:
    h = token(client)
    types = client.get(f"{QOS}/rule-types", headers=h).json()["rule_types"]
    assert [t["type"] for t in types] == [
        "bandwidth_limit",
        "dscp_marking",
        "minimum_bandwidth",
        "packet_rate_limit",
        "minimum_packet_rate",
    ]
    dscp = client.get(f"{QOS}/rule-types/dscp_marking", headers=h).json()["rule_type"]
    values = dscp["drivers"][0]["supported_parameters"][0]["parameter_values"]
    assert 26 in values
    assert 27 not in values
    assert client.get(f"{QOS}/rule-types/nope", headers=h).status_code == 404


def test_unknown_paths_answer_404_in_the_services_shape(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    r = client.get(f"{QOS}/policies/{pid}/weird_rules", headers=h)
    assert r.status_code == 404
    assert "NeutronError" in r.json()
    listed = client.get(f"{QOS}/policies/{pid}/dscp_marking_rules", headers=h)
    assert listed.json() == {"dscp_marking_rules": []}
    r = client.get(f"{QOS}/policies/no-such-policy/dscp_marking_rules", headers=h)
    assert r.status_code == 404
    assert neutron_error(r)["type"] == "QosPolicyNotFound"
    assert "NeutronError" in r.json()
    r = client.get("/networking/v2.0/nothing", headers=h)
    assert r.status_code == 404
    assert "NeutronError" in r.json()
    r = client.patch("/compute/v2.1/flavors", headers=h)
    assert r.status_code == 405
    # nova/api/openstack/wsgi.py Fault._fault_names: 405 is "badMethod", code 405.
    assert r.json()["badMethod"]["code"] == 405
    r = client.put("/identity/v3/users", headers=h)
    assert r.status_code == 405
    assert r.json()["error"] == {
        "code": 405,
        "title": "Method Not Allowed",
        "message": "The method PUT is not supported for this resource.",
    }


# --- networks, ports, servers ---------------------------------------------------------

NET = "/networking/v2.0"


def make_network(
    client: TestClient,
    h: dict[str, str],
    name: str = "net1",
    cidr: str = "10.0.0.0/29",
    **extra: Any,
) -> str:
    net = client.post(f"{NET}/networks", headers=h, json={"network": {"name": name, **extra}})
    assert net.status_code == 201, net.text
    net_id: str = net.json()["network"]["id"]
    sub = client.post(
        f"{NET}/subnets",
        headers=h,
        json={
            "subnet": {"network_id": net_id, "cidr": cidr, "ip_version": 4, "name": f"{name}-sub"}
        },
    )
    assert sub.status_code == 201, sub.text
    assert (
        sub.json()["subnet"]["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.6"}]
        or cidr != "10.0.0.0/29"
    )
    return net_id


def make_server(
    client: TestClient,
    h: dict[str, str],
    net_ids: list[str],
    flavor: str | None = None,
    name: str = "vm",
) -> dict[str, Any]:
    fid = flavor or make_flavor(client, h, name=f"f-{name}")
    r = client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={
            "server": {
                "name": name,
                "flavorRef": fid,
                "networks": [{"uuid": n} for n in net_ids],
                "min_count": 1,
                "max_count": 1,
            }
        },
    )
    assert r.status_code == 202, r.text
    server: dict[str, Any] = client.get(
        f"/compute/v2.1/servers/{r.json()['server']['id']}", headers={**h, **NOVA}
    ).json()["server"]
    return server


def test_server_gets_ports_addresses_and_a_plan(client: TestClient) -> None:
    h = token(client)
    net_id = make_network(client, h)
    server = make_server(client, h, [net_id])
    assert server["status"] == "ACTIVE"
    assert server["addresses"]["net1"][0]["addr"] == "10.0.0.2"
    ports = client.get(f"{NET}/ports?device_id={server['id']}", headers=h).json()["ports"]
    assert len(ports) == 1
    assert ports[0]["mac_address"].startswith("fa:16:3e:")
    plan = client.get(f"/qosplane/v1/servers/{server['id']}/plan", headers=h).json()["plan"]
    assert plan["instance"]["uuid"] == server["id"]
    assert "tap" + ports[0]["id"][:11] in plan["domain_xml"]
    by_name = client.get("/qosplane/v1/servers/vm/plan", headers=h)
    assert by_name.json()["server"]["id"] == server["id"]


def test_network_policy_reaches_the_plan_and_blocks_deletion(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    client.post(
        f"{QOS}/policies/{pid}/dscp_marking_rules",
        headers=h,
        json={"dscp_marking_rule": {"dscp_mark": 26}},
    )
    net_id = make_network(client, h)
    server = make_server(client, h, [net_id])
    r = client.put(f"{NET}/networks/{net_id}", headers=h, json={"network": {"qos_policy_id": pid}})
    assert r.status_code == 200
    port = client.get(f"{NET}/ports?device_id={server['id']}", headers=h).json()["ports"][0]
    assert (port["qos_policy_id"], port["qos_network_policy_id"]) == (None, pid)
    plan = client.get(f"/qosplane/v1/servers/{server['id']}/plan", headers=h).json()["plan"]
    assert any("mod_nw_tos:104" in c[-1] for c in plan["ovs"])
    r = client.delete(f"{QOS}/policies/{pid}", headers=h)
    assert r.status_code == 409
    assert "is used by network" in neutron_error(r)["message"]


def test_rule_change_recompiles_plans_of_bound_ports(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    server = make_server(client, h, [make_network(client, h)])
    port_id = client.get(f"{NET}/ports?device_id={server['id']}", headers=h).json()["ports"][0][
        "id"
    ]
    assert (
        client.put(
            f"{NET}/ports/{port_id}", headers=h, json={"port": {"qos_policy_id": pid}}
        ).status_code
        == 200
    )
    client.post(
        f"{QOS}/policies/{pid}/bandwidth_limit_rules",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": 5000, "max_burst_kbps": 500}},
    )
    plan = client.get(f"/qosplane/v1/servers/{server['id']}/plan", headers=h).json()["plan"]
    assert plan["revision"] == 3  # create, port binding, rule
    assert any("ingress_policing_rate=5000" in c for c in plan["ovs"])
    stale = client.put(
        f"{NET}/ports/{port_id}",
        headers={**h, "If-Match": "revision_number=0"},
        json={"port": {"qos_policy_id": None}},
    )
    assert stale.status_code == 412


def test_flavor_spec_change_recompiles_and_v2_weight_overflow_is_error(client: TestClient) -> None:
    h = token(client)
    fid = make_flavor(client, h, name="big")
    server = make_server(client, h, [make_network(client, h)], flavor=fid)
    client.post(
        f"/compute/v2.1/flavors/{fid}/os-extra_specs",
        headers=h,
        json={"extra_specs": {"quota:cpu_shares": "2048"}},
    )
    plan = client.get(f"/qosplane/v1/servers/{server['id']}/plan", headers=h).json()["plan"]
    assert plan["cgroup"]["v1"] == {"cpu.shares": "2048"}


def test_subnet_pool_exhaustion_is_409_and_rolls_back_the_server(client: TestClient) -> None:
    h = token(client)
    net_id = make_network(client, h, cidr="10.9.0.0/30")  # one usable address
    make_server(client, h, [net_id], name="first")
    fid = make_flavor(client, h, name="f2")
    r = client.post(
        "/compute/v2.1/servers",
        headers=h,
        json={"server": {"name": "second", "flavorRef": fid, "networks": [{"uuid": net_id}]}},
    )
    assert r.status_code == 409
    assert "No more IP addresses" in r.json()["conflictingRequest"]["message"]
    names = [
        s["name"] for s in client.get("/compute/v2.1/servers/detail", headers=h).json()["servers"]
    ]
    assert names == ["first"]
    assert len(client.get(f"{NET}/ports", headers=h).json()["ports"]) == 1


@pytest.mark.parametrize(
    ("server", "field"),
    [
        ({"name": "x", "flavorRef": "nope"}, "server.flavorRef"),
        ({"name": "", "flavorRef": "f"}, "server.name"),
        ({"name": "x", "flavorRef": "FLAVOR", "networks": "auto"}, "server.networks"),
        ({"name": "x", "flavorRef": "FLAVOR", "networks": [{"uuid": 1}]}, "server.networks"),
        ({"name": "x", "flavorRef": "FLAVOR", "imageRef": "nope"}, "server.imageRef"),
        ({"name": "x", "flavorRef": "FLAVOR", "key_name": "nope"}, "server.key_name"),
        (
            {"name": "x", "flavorRef": "FLAVOR", "security_groups": [{"name": "nope"}]},
            "security group",
        ),
    ],
)
def test_bad_server_request_is_400_naming_the_field(
    client: TestClient, server: dict[str, Any], field: str
) -> None:
    h = token(client)
    fid = make_flavor(client, h)
    body = {k: (fid if v == "FLAVOR" else v) for k, v in server.items()}
    r = client.post("/compute/v2.1/servers", headers=h, json={"server": body})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"].startswith(field)
    assert client.get("/compute/v2.1/servers/detail", headers=h).json()["servers"] == []


@pytest.mark.parametrize(
    ("subnet", "field"),
    [
        ({"cidr": "10.0.0.1/24"}, "subnet.cidr"),
        ({"cidr": "banana"}, "subnet.cidr"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "10.1.0.1"}, "subnet.gateway_ip"),
        (
            {"cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.1.2", "end": "10.0.0.9"}]},
            "subnet.allocation_pools.start",
        ),
        ({"cidr": "10.0.0.0/32"}, "subnet.cidr"),
    ],
)
def test_bad_subnet_is_400(client: TestClient, subnet: dict[str, Any], field: str) -> None:
    h = token(client)
    net_id = client.post(f"{NET}/networks", headers=h, json={"network": {"name": "n"}}).json()[
        "network"
    ]["id"]
    r = client.post(f"{NET}/subnets", headers=h, json={"subnet": {"network_id": net_id, **subnet}})
    assert r.status_code == 400
    assert neutron_error(r)["message"].startswith(field)


def test_lookups_by_name_on_id_paths_are_404(client: TestClient) -> None:
    h = token(client)
    make_network(client, h, name="mplane")
    for path in (
        f"{NET}/networks/mplane",
        f"{NET}/ports/x",
        f"{NET}/security-groups/sg",
        f"{NET}/subnets/x",
        "/compute/v2.1/servers/vm",
        "/image/v2/images/rhel7",
        "/compute/v2.1/os-keypairs/k",
    ):
        assert client.get(path, headers=h).status_code == 404, path
    assert (
        client.get(f"{NET}/networks?name=mplane", headers=h).json()["networks"][0]["name"]
        == "mplane"
    )


# --- Cinder -----------------------------------------------------------------------------

VOL = "/volume/v3/admin-project-id"


def test_volume_discovery_and_catalog_url(client: TestClient) -> None:
    doc = client.get("/volume/v3/").json()["versions"][0]
    assert (doc["min_version"], doc["version"]) == ("3.0", "3.71")
    assert client.get("/volume/").status_code == 300


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"name": "x", "consumer": "frontend"}, "one of front-end, back-end, both"),
        ({"name": "x", "consumer": "front-end", "read_iops_sec": "fast"}, "read_iops_sec"),
        (
            {"name": "x", "consumer": "both", "total_iops_sec": "1", "read_iops_sec": "1"},
            "not both",
        ),
        ({"consumer": "front-end"}, "qos_specs.name"),
    ],
)
def test_bad_qos_spec_is_400(client: TestClient, spec: dict[str, Any], needle: str) -> None:
    r = client.post(f"{VOL}/qos-specs", headers=token(client), json={"qos_specs": spec})
    assert r.status_code == 400
    assert needle in r.json()["badRequest"]["message"]


def test_back_end_specs_are_not_checked_and_reach_no_plan(client: TestClient) -> None:
    h = token(client)
    r = client.post(
        f"{VOL}/qos-specs",
        headers=h,
        json={"qos_specs": {"name": "be", "read_iops_sec_per_gb": "10", "vendor:thing": "x"}},
    )
    assert r.status_code == 200
    assert r.json()["qos_specs"]["consumer"] == "back-end"  # Cinder's default


def test_spec_association_rules(client: TestClient) -> None:
    h = token(client)
    a = client.post(f"{VOL}/qos-specs", headers=h, json={"qos_specs": {"name": "a"}}).json()[
        "qos_specs"
    ]["id"]
    b = client.post(f"{VOL}/qos-specs", headers=h, json={"qos_specs": {"name": "b"}}).json()[
        "qos_specs"
    ]["id"]
    t = client.post(f"{VOL}/types", headers=h, json={"volume_type": {"name": "t"}}).json()[
        "volume_type"
    ]["id"]
    assert (
        client.get(f"{VOL}/qos-specs/{a}/associate?vol_type_id={t}", headers=h).status_code == 202
    )
    assert (
        client.get(f"{VOL}/qos-specs/{a}/associate?vol_type_id={t}", headers=h).status_code == 202
    )
    r = client.get(f"{VOL}/qos-specs/{b}/associate?vol_type_id={t}", headers=h)
    assert r.status_code == 400
    assert "already associated" in r.json()["badRequest"]["message"]
    assert client.get(f"{VOL}/types/t", headers=h).status_code == 404  # ids only, as Cinder
    assert client.delete(f"{VOL}/qos-specs/{a}?force=False", headers=h).status_code == 400
    assert (
        client.get(f"{VOL}/qos-specs/{a}/disassociate?vol_type_id={t}", headers=h).status_code
        == 202
    )
    assert client.delete(f"{VOL}/qos-specs/{a}?force=False", headers=h).status_code == 202
    r = client.put(f"{VOL}/qos-specs/{b}/delete_keys", headers=h, json={"keys": ["missing"]})
    assert r.status_code == 404


def test_volume_requires_a_size_and_an_existing_type(client: TestClient) -> None:
    h = token(client)
    r = client.post(f"{VOL}/volumes", headers=h, json={"volume": {"name": "v", "size": 0}})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"].startswith("volume.size")
    r = client.post(
        f"{VOL}/volumes",
        headers=h,
        json={"volume": {"name": "v", "size": 1, "volume_type": "nope"}},
    )
    assert r.status_code == 400
    assert "volume.volume_type" in r.json()["badRequest"]["message"]


def test_attaching_twice_is_refused(client: TestClient) -> None:
    h = token(client)
    server = make_server(client, h, [make_network(client, h)])
    vol = client.post(
        f"{VOL}/volumes", headers=h, json={"volume": {"name": "v", "size": 1}}
    ).json()["volume"]
    url = f"/compute/v2.1/servers/{server['id']}/os-volume_attachments"
    assert (
        client.post(url, headers=h, json={"volumeAttachment": {"volumeId": vol["id"]}}).status_code
        == 200
    )
    r = client.post(url, headers=h, json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 400
    assert "in-use" in r.json()["badRequest"]["message"]


# --- identity: projects, users, roles ----------------------------------------------------


def test_projects_users_and_grants(client: TestClient) -> None:
    h = token(client)
    pid = client.post(
        "/identity/v3/projects", headers=h, json={"project": {"name": "demo"}}
    ).json()["project"]["id"]
    dup = client.post("/identity/v3/projects", headers=h, json={"project": {"name": "demo"}})
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == 409
    uid = client.post(
        "/identity/v3/users",
        headers=h,
        json={"user": {"name": "alice", "password": "pw", "default_project_id": pid}},
    ).json()["user"]["id"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "alice", "password": "pw"}},
            },
            "scope": {"project": {"name": "demo"}},
        }
    }
    assert client.post("/identity/v3/auth/tokens", json=body).status_code == 401  # no role yet
    assert (
        client.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/member", headers=h).status_code
        == 204
    )
    assert (
        client.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/owner", headers=h).status_code
        == 404
    )
    r = client.post("/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201
    roles = {x["name"] for x in r.json()["token"]["roles"]}
    assert roles == {"member", "reader"}
    alice = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    assert client.get("/identity/v3/projects", headers=alice).status_code == 403
    assert client.get(f"/identity/v3/projects/{pid}", headers=alice).status_code == 200
    listed = client.get("/identity/v3/role_assignments?include_names", headers=h).json()
    pairs = {(a["user"]["name"], a["role"]["name"]) for a in listed["role_assignments"]}
    assert pairs == {("admin", "admin"), ("alice", "member")}
    # By id, as tempest's dynamic credentials authenticate (keystone UserAuthInfo).
    by_id: dict[str, str] = body["auth"]["identity"]["password"]["user"]  # type: ignore[index]
    for user, status in (
        ({"id": uid, "password": "pw"}, 201),
        ({"id": uid, "password": "wrong"}, 401),
        ({"id": "no-such-user", "password": "pw"}, 401),
        ({"password": "pw"}, 401),
    ):
        by_id.clear()
        by_id.update(user)
        got = client.post("/identity/v3/auth/tokens", json=body)
        assert got.status_code == status, (user, got.text)
        if status == 201:
            assert got.json()["token"]["user"]["id"] == uid


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/identity/v3/projects", {"project": {"name": ""}}, "project.name"),
        ("/identity/v3/projects", {"project": {"name": "p", "enabled": "yes"}}, "project.enabled"),
        ("/identity/v3/users", {"user": {"name": "bob", "password": 7}}, "user.password"),
        ("/identity/v3/users", {"user": {"name": "bob", "password": ""}}, "user.password"),
        ("/identity/v3/users", {"user": {"name": "bob", "enabled": 1}}, "user.enabled"),
        ("/identity/v3/users", {"user": {"name": "b", "description": 5}}, "user.description"),
        ("/identity/v3/roles", {"role": {"name": ""}}, "role.name"),
    ],
)
def test_bad_identity_input_is_400(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    r = client.post(path, headers=token(client), json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(field)


@pytest.mark.answers_a_bug
def test_a_bug_is_a_logged_500_in_the_services_shape(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "broken.db"))
    upgrade(engine)
    app = build_app(services_of(engine))
    with TestClient(app, raise_server_exceptions=False) as c:
        h = token(c)
        with engine.begin() as conn:  # break the schema behind the API's back
            conn.exec_driver_sql("DROP TABLE flavor_extra_specs")
        make = c.post(
            "/compute/v2.1/flavors", headers=h, json={"flavor": {"name": "x", "ram": 1, "vcpus": 1}}
        )
        assert make.status_code == 500
        assert "internal error (OperationalError)" in make.json()["computeFault"]["message"]
    engine.dispose()


@pytest.mark.answers_a_bug
def test_a_500_leaves_the_keep_alive_connection_usable(tmp_path: Path) -> None:
    """Through real uvicorn: Starlette's own 500 handler re-raises, and uvicorn then closes
    the connection, so the client's next request on it failed as well."""
    engine = make_engine(sqlite_url(tmp_path / "broken.db"))
    upgrade(engine)
    app = build_app(services_of(engine))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        with TestClient(app) as c:
            h = token(c)
        with engine.begin() as conn:  # break the schema behind the API's back
            conn.exec_driver_sql("DROP TABLE flavor_extra_specs")
        conn_http = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = json.dumps({"flavor": {"name": "x", "ram": 1, "vcpus": 1}})
        conn_http.request("POST", "/compute/v2.1/flavors", body=body, headers=h)
        broken = conn_http.getresponse()
        assert broken.status == 500
        assert "internal error" in json.loads(broken.read())["computeFault"]["message"]
        assert broken.getheader("connection") != "close"
        socket_before = conn_http.sock
        conn_http.request("GET", "/compute/v2.1/flavors", headers=h)
        after = conn_http.getresponse()
        assert after.status == 200, after.read()
        after.read()
        assert conn_http.sock is socket_before  # the same connection, not a reconnect
        conn_http.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def test_projects_do_not_see_each_others_networks_ports_and_volumes(client: TestClient) -> None:
    h = token(client)
    private = make_network(client, h, name="admin-net")
    shared = client.post(
        f"{NET}/networks", headers=h, json={"network": {"name": "pub", "shared": True}}
    ).json()["network"]["id"]
    server = make_server(client, h, [private])
    port_id = client.get(f"{NET}/ports?device_id={server['id']}", headers=h).json()["ports"][0][
        "id"
    ]
    vol = client.post(
        f"{VOL}/volumes", headers=h, json={"volume": {"name": "v", "size": 1}}
    ).json()["volume"]["id"]
    m = member_token(client)
    names = {n["name"] for n in client.get(f"{NET}/networks", headers=m).json()["networks"]}
    assert names == {"pub"}
    assert client.get(f"{NET}/networks/{private}", headers=m).status_code == 404
    assert (
        client.put(
            f"{NET}/networks/{shared}", headers=m, json={"network": {"name": "x"}}
        ).status_code
        == 403
    )
    assert client.get(f"{NET}/subnets", headers=m).json()["subnets"] == []
    assert client.get(f"{NET}/ports", headers=m).json()["ports"] == []
    assert client.get(f"{NET}/ports/{port_id}", headers=m).status_code == 404
    r = client.put(f"{NET}/ports/{port_id}", headers=m, json={"port": {"qos_policy_id": None}})
    assert r.status_code == 404
    assert client.get(f"{VOL}/volumes/{vol}", headers=m).status_code == 404
    assert client.get(f"{VOL}/volumes/detail", headers=m).json()["volumes"] == []
    r = client.post(
        f"{NET}/subnets", headers=m, json={"subnet": {"network_id": private, "cidr": "10.7.0.0/24"}}
    )
    assert r.status_code == 404


def test_network_policy_binding_honours_if_match(client: TestClient) -> None:
    h = token(client)
    pid = make_policy(client, h)["id"]
    net_id = make_network(client, h)
    stale = client.put(
        f"{NET}/networks/{net_id}",
        headers={**h, "If-Match": "revision_number=4"},
        json={"network": {"qos_policy_id": pid}},
    )
    assert stale.status_code == 412
    ok = client.put(
        f"{NET}/networks/{net_id}",
        headers={**h, "If-Match": "revision_number=0"},
        json={"network": {"qos_policy_id": pid}},
    )
    assert ok.json()["network"]["revision_number"] == 1
    assert ok.json()["network"]["qos_policy_id"] == pid


def test_a_port_made_alone_is_bound_by_a_server_and_kept_after_it(client: TestClient) -> None:
    h = token(client)
    net_id = make_network(client, h)
    missing = client.post(f"{NET}/ports", headers=h, json={"port": {"name": "p"}})
    assert missing.status_code == 400
    assert "port.network_id" in neutron_error(missing)["message"]
    unknown = client.post(f"{NET}/ports", headers=h, json={"port": {"network_id": "nope"}})
    assert unknown.status_code == 404
    made = client.post(f"{NET}/ports", headers=h, json={"port": {"network_id": net_id}})
    assert made.status_code == 201, made.text
    port = made.json()["port"]
    assert (port["device_id"], port["fixed_ips"][0]["ip_address"]) == ("", "10.0.0.2")
    fid = make_flavor(client, h, name="f-port")
    body = {"server": {"name": "vmp", "flavorRef": fid, "networks": [{"port": port["id"]}]}}
    r = client.post("/compute/v2.1/servers", headers={**h, **NOVA}, json=body)
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    bound = client.get(f"{NET}/ports/{port['id']}", headers=h).json()["port"]
    assert bound["device_id"] == server_id
    plan = client.get(f"/qosplane/v1/servers/{server_id}/plan", headers=h).json()["plan"]
    assert "tap" + port["id"][:11] in plan["domain_xml"]
    twice = client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={**body, "server": {**body["server"], "name": "vmq"}},
    )
    assert twice.status_code == 409
    busy = client.delete(f"{NET}/ports/{port['id']}", headers=h)
    assert busy.status_code == 409
    assert server_id in neutron_error(busy)["message"]
    assert (
        client.delete(f"/compute/v2.1/servers/{server_id}", headers={**h, **NOVA}).status_code
        == 204
    )
    kept = client.get(f"{NET}/ports/{port['id']}", headers=h).json()["port"]
    assert kept["device_id"] == ""
    assert client.delete(f"{NET}/ports/{port['id']}", headers=h).status_code == 204
    assert client.get(f"{NET}/ports/{port['id']}", headers=h).status_code == 404
    foreign = client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={"server": {"name": "vmr", "flavorRef": fid, "networks": [{"port": "nope"}]}},
    )
    assert foreign.status_code == 400


def test_extensions_list_what_is_implemented(client: TestClient) -> None:
    h = token(client)
    aliases = {e["alias"] for e in client.get(f"{NET}/extensions", headers=h).json()["extensions"]}
    assert {"qos", "qos-bw-limit-direction", "binding"} <= aliases
    assert client.get(f"{NET}/extensions/qos", headers=h).json()["extension"]["alias"] == "qos"
    assert client.get(f"{NET}/extensions/port-hints", headers=h).status_code == 404


def test_flavor_ids_and_public_flags_take_novas_forms(client: TestClient) -> None:
    """flavor_manage.py: an id may be a number (tempest sends one), stored as its string;
    is_public takes Nova's boolean strings (parameter_types.boolean)."""
    h = token(client)

    def create(**fields: object) -> httpx.Response:
        body = {"flavor": {"name": f"f{len(str(fields))}", "ram": 64, "vcpus": 1, **fields}}
        response: httpx.Response = client.post("/compute/v2.1/flavors", headers=h, json=body)
        return response

    made = create(id=12345, **{"os-flavor-access:is_public": "False"})
    assert made.status_code == 200, made.text
    flavor = made.json()["flavor"]
    assert (flavor["id"], flavor["os-flavor-access:is_public"]) == ("12345", False)
    assert client.get("/compute/v2.1/flavors/12345", headers=h).status_code == 200
    assert create(id="tiny.1", **{"os-flavor-access:is_public": "yes"}).status_code == 200
    for bad in ({"id": "a/b"}, {"id": " x"}, {"id": ""}, {"os-flavor-access:is_public": "maybe"}):
        refused = create(**bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert next(iter(bad)) in refused.json()["badRequest"]["message"]
