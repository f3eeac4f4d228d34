"""Nova's flavor list: minRam/minDisk filters, sort, limit and marker with the next link,
and PUT of one extra spec (nova/api/openstack/compute/flavors.py, flavors_extraspecs.py,
nova/api/openstack/common.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.test_api import NOVA, member_token, token

F = "/compute/v2.1/flavors"


def _flavors(client: TestClient, h: dict[str, str]) -> None:
    for fid, name, ram, disk in (("3", "c", 512, 1), ("1", "a", 2048, 20), ("2", "b", 1024, 10)):
        body = {"flavor": {"id": fid, "name": name, "ram": ram, "vcpus": 1, "disk": disk}}
        assert client.post(F, headers={**h, **NOVA}, json=body).status_code == 200


def _ids(client: TestClient, h: dict[str, str], query: str) -> list[str]:
    r = client.get(f"{F}/detail?{query}", headers={**h, **NOVA})
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["flavors"]]


def test_filters_sorting_and_pages(client: TestClient) -> None:
    h = token(client)
    _flavors(client, h)
    assert _ids(client, h, "") == ["1", "2", "3"]  # flavorid ascending by default
    assert _ids(client, h, "minRam=1024") == ["1", "2"]
    assert _ids(client, h, "minDisk=11") == ["1"]
    assert _ids(client, h, "sort_key=memory_mb&sort_dir=desc") == ["1", "2", "3"]
    assert _ids(client, h, "sort_key=name&sort_dir=desc") == ["3", "2", "1"]
    first = client.get(f"{F}?limit=2", headers={**h, **NOVA}).json()
    assert [f["id"] for f in first["flavors"]] == ["1", "2"]
    assert set(first["flavors"][0]) == {"id", "name", "links", "description"}  # 2.55+
    (link,) = first["flavors_links"]
    assert link["rel"] == "next"
    assert "marker=2" in link["href"]
    assert "limit=2" in link["href"]
    assert _ids(client, h, "limit=2&marker=2") == ["3"]
    last = client.get(f"{F}?limit=2&marker=2", headers={**h, **NOVA}).json()
    assert "flavors_links" not in last  # a short page is the last
    # A member sees the same public list.
    assert _ids(client, member_token(client), "minRam=2048") == ["1"]


def test_bad_list_parameters_are_400_naming_them(client: TestClient) -> None:
    h = token(client)
    _flavors(client, h)
    for query, field in (
        ("minRam=abc", "minRam"),
        ("minDisk=-1", "minDisk"),
        ("limit=-1", "limit"),
        ("marker=nope", "marker"),
        ("sort_key=colour", "sort_key"),
        ("sort_dir=up", "sort_dir"),
    ):
        r = client.get(f"{F}?{query}", headers={**h, **NOVA})
        assert r.status_code == 400, query
        assert r.json()["badRequest"]["message"].startswith(field), r.text


def test_one_extra_spec_is_put_by_its_key(client: TestClient) -> None:
    h = {**token(client), **NOVA}
    _flavors(client, h)
    url = f"{F}/1/os-extra_specs/quota:cpu_shares"
    r = client.put(url, headers=h, json={"quota:cpu_shares": "512"})
    assert r.status_code == 200
    assert r.json() == {"quota:cpu_shares": "512"}
    assert client.get(url, headers=h).json() == {"quota:cpu_shares": "512"}
    mismatch = client.put(url, headers=h, json={"quota:cpu_period": "1000"})
    assert mismatch.status_code == 400
    assert "mismatch" in mismatch.json()["badRequest"]["message"]
    more = client.put(url, headers=h, json={"quota:cpu_shares": "1", "hw:cpu_policy": "x"})
    assert more.status_code == 400
    assert "too many" in more.json()["badRequest"]["message"]
    # The value is checked as on POST; a member may not change it.
    assert client.put(url, headers=h, json={"quota:cpu_shares": "-1"}).status_code == 400
    m = {**member_token(client), **NOVA}
    assert client.put(url, headers=m, json={"quota:cpu_shares": "2"}).status_code == 403
    assert client.get(url, headers=h).json() == {"quota:cpu_shares": "512"}


def test_an_image_larger_than_the_flavor_is_refused_at_boot(client: TestClient) -> None:
    """nova/compute/api.py: FlavorMemoryTooSmall, FlavorDiskSmallerThanMinDisk (400)."""
    h = {**token(client), **NOVA}
    _flavors(client, h)  # flavor 3: 512 MB, 1 GB
    net = client.post("/networking/v2.0/networks", headers=h, json={"network": {}}).json()
    net_id = net["network"]["id"]
    for image_body, message in (
        ({"name": "big-ram", "min_ram": 513}, "memory is too small"),
        ({"name": "big-disk", "min_disk": 2}, "disk is smaller"),
    ):
        image = client.post("/image/v2/images", headers=h, json=image_body).json()
        assert image["min_ram"] == image_body.get("min_ram", 0)
        server = {"name": "s", "flavorRef": "3", "imageRef": image["id"], "networks": "none"}
        r = client.post("/compute/v2.1/servers", headers=h, json={"server": server})
        assert r.status_code == 400, r.text
        assert message in r.json()["badRequest"]["message"]
    fits = client.post("/image/v2/images", headers=h, json={"name": "ok", "min_ram": 512}).json()
    server = {"name": "s", "flavorRef": "3", "imageRef": fits["id"], "networks": [{"uuid": net_id}]}
    assert (
        client.post("/compute/v2.1/servers", headers=h, json={"server": server}).status_code == 202
    )
    bad = client.post("/image/v2/images", headers=h, json={"name": "x", "min_ram": -1})
    assert bad.status_code == 400


def test_every_nova_response_names_its_microversion(client: TestClient) -> None:
    """nova/api/openstack/wsgi.py: OpenStack-API-Version and X-OpenStack-Nova-API-Version
    on every response, errors included, and Vary on both."""
    h = token(client)
    r = client.get(F, headers={**h, "OpenStack-API-Version": "compute 2.61"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.61"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.61"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    legacy = client.get(F, headers={**h, "X-OpenStack-Nova-API-Version": "2.55"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.55"
    plain = client.get(F, headers=h)
    assert plain.headers["OpenStack-API-Version"] == "compute 2.1"
    missing = client.get(f"{F}/nope", headers={**h, **NOVA})
    assert missing.status_code == 404
    assert missing.headers["OpenStack-API-Version"] == NOVA["OpenStack-API-Version"]
    latest = client.get(F, headers={**h, "OpenStack-API-Version": "compute latest"})
    assert latest.headers["X-OpenStack-Nova-API-Version"] == "2.96"


def test_a_flavor_description_is_set_and_updated_from_2_55(client: TestClient) -> None:
    h = token(client)
    v255 = {**h, "OpenStack-API-Version": "compute 2.55"}
    body = {"flavor": {"name": "d", "ram": 64, "vcpus": 1, "disk": 0, "description": "small"}}
    assert (
        client.post(
            F, headers={**h, "OpenStack-API-Version": "compute 2.54"}, json=body
        ).status_code
        == 400
    )
    made = client.post(F, headers=v255, json=body).json()["flavor"]
    assert made["description"] == "small"
    url = f"{F}/{made['id']}"
    r = client.put(url, headers=v255, json={"flavor": {"description": "tiny"}})
    assert r.status_code == 200
    assert r.json()["flavor"]["description"] == "tiny"
    assert client.get(url, headers=v255).json()["flavor"]["description"] == "tiny"
    listed = client.get(f"{F}/detail", headers=v255).json()["flavors"]
    assert [f["description"] for f in listed if f["id"] == made["id"]] == ["tiny"]
    summary = client.get(F, headers=v255).json()["flavors"]
    assert [set(f) for f in summary] == [{"id", "name", "links", "description"}]
    assert "description" not in client.get(url, headers=h).json()["flavor"]  # 2.1
    assert client.put(url, headers=h, json={"flavor": {"description": "x"}}).status_code == 404
    assert client.put(url, headers=v255, json={"flavor": {"name": "x"}}).status_code == 400
    m = {**member_token(client), "OpenStack-API-Version": "compute 2.55"}
    assert client.put(url, headers=m, json={"flavor": {"description": "x"}}).status_code == 403
