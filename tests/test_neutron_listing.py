"""Neutron list queries (api/neutron/listing.py): filters narrow a listing, never widen
it, and fields, sorting and pagination behave as Neutron's (neutron/api/api_common.py)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.test_api import make_network, token
from tests.test_policy_matrix import PROJECT_A, _headers

QOS = "/networking/v2.0/qos/policies"
NET = "/networking/v2.0"


def _names(client: TestClient, h: dict[str, str], query: str) -> list[str]:
    r = client.get(f"{QOS}?{query}", headers=h)
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()["policies"]]


def _policies(client: TestClient) -> dict[str, str]:
    admin = token(client)
    for name, headers, shared in (
        ("a1", _headers(client, "manager"), False),
        ("b2", admin, True),
        ("c3", admin, False),
    ):
        body: dict[str, Any] = {"policy": {"name": name, "shared": shared}}
        r = client.post(QOS, headers=headers, json=body)
        assert r.status_code == 201, r.text
    return admin


def test_filters_narrow_by_project_shared_and_any_of_several_values(client: TestClient) -> None:
    admin = _policies(client)
    assert sorted(_names(client, admin, "")) == ["a1", "b2", "c3"]
    assert _names(client, admin, f"project_id={PROJECT_A}") == ["a1"]
    assert _names(client, admin, f"tenant_id={PROJECT_A}") == ["a1"]
    assert _names(client, admin, "shared=true") == ["b2"]
    assert sorted(_names(client, admin, "shared=False")) == ["a1", "c3"]
    assert sorted(_names(client, admin, "name=a1&name=c3")) == ["a1", "c3"]
    assert _names(client, admin, "name=a1&shared=true") == []
    # A filter never widens what the caller sees: project A's reader asks for the admin's.
    reader = _headers(client, "reader")
    assert _names(client, reader, "project_id=admin-project-id") == ["b2"]  # shared only


def test_an_unknown_filter_or_sort_key_is_a_400_naming_it(client: TestClient) -> None:
    admin = _policies(client)
    for query, named in (("colour=red", "colour"), ("sort_key=colour", "sort_key")):
        r = client.get(f"{QOS}?{query}", headers=admin)
        assert r.status_code == 400, r.text
        assert named in r.json()["NeutronError"]["message"]


def test_fields_sorting_and_pages(client: TestClient) -> None:
    admin = _policies(client)
    r = client.get(f"{QOS}?fields=id&fields=name&sort_key=name&sort_dir=desc", headers=admin)
    body = r.json()["policies"]
    assert [p["name"] for p in body] == ["c3", "b2", "a1"]
    assert all(set(p) == {"id", "name"} for p in body)
    first = client.get(f"{QOS}?limit=2&sort_key=name", headers=admin).json()
    assert [p["name"] for p in first["policies"]] == ["a1", "b2"]
    (link,) = [x for x in first["policies_links"] if x["rel"] == "next"]
    assert f"marker={first['policies'][-1]['id']}" in link["href"]
    rest = client.get(
        f"{QOS}?limit=2&sort_key=name&marker={first['policies'][-1]['id']}", headers=admin
    ).json()
    assert [p["name"] for p in rest["policies"]] == ["c3"]
    assert [x["rel"] for x in rest["policies_links"]] == ["previous"]
    # Neutron (api_common.py get_pagination_links): a full page has a next link even when
    # nothing follows; the page after it is empty and has none.
    full = client.get(f"{QOS}?limit=3&sort_key=name", headers=admin).json()
    (after,) = [x["href"] for x in full["policies_links"] if x["rel"] == "next"]
    empty = client.get(after.removeprefix("http://testserver"), headers=admin)
    assert empty.json()["policies"] == []
    assert [x["rel"] for x in empty.json()["policies_links"]] == ["previous"]
    backwards = client.get(
        f"{QOS}?limit=2&sort_key=name&marker={rest['policies'][0]['id']}&page_reverse=True",
        headers=admin,
    ).json()
    assert [p["name"] for p in backwards["policies"]] == ["a1", "b2"]
    # Another's marker (here the admin's policy, as a reader of project A) is ignored.
    reader = _headers(client, "reader")
    (hidden,) = [p["id"] for p in client.get(f"{QOS}?name=c3", headers=admin).json()["policies"]]
    foreign = client.get(f"{QOS}?limit=1&marker={hidden}", headers=reader)
    assert foreign.status_code == 200
    assert (
        foreign.json()["policies"]
        == client.get(f"{QOS}?limit=1", headers=reader).json()["policies"]
    )
    bad = client.get(f"{QOS}?limit=-1", headers=admin)
    assert bad.status_code == 400


def test_ports_and_networks_filter_by_project(client: TestClient) -> None:
    admin = token(client)
    mine = make_network(client, admin, name="admin-net")
    theirs = make_network(client, _headers(client, "member"), name="a-net", cidr="10.9.0.0/29")
    for net in (mine, theirs):
        assert (
            client.post(
                f"{NET}/ports",
                headers=admin if net == mine else _headers(client, "member"),
                json={"port": {"network_id": net}},
            ).status_code
            == 201
        )
    nets = client.get(f"{NET}/networks?project_id={PROJECT_A}", headers=admin).json()
    assert [n["id"] for n in nets["networks"]] == [theirs]
    ports = client.get(f"{NET}/ports?project_id={PROJECT_A}", headers=admin).json()["ports"]
    assert [p["network_id"] for p in ports] == [theirs]


def test_a_repeated_filter_matches_any_of_its_values_on_every_list(client: TestClient) -> None:
    admin = token(client)
    nets = [
        make_network(client, admin, name=n, cidr=c)
        for n, c in (("n1", "10.1.0.0/29"), ("n2", "10.2.0.0/29"))
    ]
    got = client.get(f"{NET}/networks?name=n1&name=n2", headers=admin).json()["networks"]
    assert sorted(n["id"] for n in got) == sorted(nets)
    query = "&".join(f"network_id={n}" for n in nets)
    subnets = client.get(f"{NET}/subnets?{query}", headers=admin).json()["subnets"]
    assert sorted(s["network_id"] for s in subnets) == sorted(nets)
    for net in nets:
        made = client.post(f"{NET}/ports", headers=admin, json={"port": {"network_id": net}})
        assert made.status_code == 201, made.text
    ports = client.get(f"{NET}/ports?{query}", headers=admin).json()["ports"]
    assert sorted(p["network_id"] for p in ports) == sorted(nets)
