"""Input that used to answer 500 answers 4xx, naming the field and what is allowed: lone
surrogates, deep nesting and bodies over the size limit. On SQLite and PostgreSQL.

Integers keep upstream's rule: Nova's extra spec validator takes what Python's int() takes
(nova/api/validation/extra_specs/base.py _validate_int), " 100" and "1_000" included; see
tests/test_nova_specs.py."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from qosplane.api.common import MAX_BODY_BYTES, MAX_JSON_DEPTH
from tests.test_api import make_flavor, token

SURROGATE_BODIES = [
    ("/networking/v2.0/qos/policies", "policy", "name"),
    ("/networking/v2.0/networks", "network", "name"),
    ("/compute/v2.1/flavors", "flavor", "name"),
    ("/compute/v2.1/os-keypairs", "keypair", "name"),
    ("/volume/v3/admin-project-id/qos-specs", "qos_specs", "name"),
    ("/volume/v3/admin-project-id/types", "volume_type", "name"),
    ("/identity/v3/projects", "project", "name"),
    ("/identity/v3/users", "user", "name"),
]


@pytest.mark.parametrize(("path", "key", "field"), SURROGATE_BODIES)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    client: TestClient, path: str, key: str, field: str
) -> None:
    raw = '{"' + key + '": {"' + field + '": "x\\ud800y"}}'
    r = client.post(
        path, headers={**token(client), "Content-Type": "application/json"}, content=raw
    )
    assert r.status_code == 400, r.text
    assert f"{key}.{field}" in r.text
    assert "valid Unicode text" in r.text


def test_a_surrogate_in_an_extra_spec_key_is_a_400(client: TestClient) -> None:
    h = token(client)
    fid = make_flavor(client, h)
    raw = '{"extra_specs": {"quota:\\udc80": "1"}}'
    r = client.post(
        f"/compute/v2.1/flavors/{fid}/os-extra_specs",
        headers={**h, "Content-Type": "application/json"},
        content=raw,
    )
    assert r.status_code == 400, r.text
    assert "extra_specs key" in r.text


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 5, 5000])
def test_deep_nesting_is_a_400(client: TestClient, depth: int) -> None:
    raw = '{"policy": {"name": ' + "[" * depth + "]" * depth + "}}"
    r = client.post(
        "/networking/v2.0/qos/policies",
        headers={**token(client), "Content-Type": "application/json"},
        content=raw,
    )
    assert r.status_code == 400, r.text
    assert f"JSON nested at most {MAX_JSON_DEPTH} levels deep" in r.text


def test_a_body_over_the_limit_is_a_413_before_it_is_read(client: TestClient) -> None:
    h = {**token(client), "Content-Type": "application/json"}
    name = "n" * (MAX_BODY_BYTES + 1)
    r = client.post(
        "/compute/v2.1/flavors", headers=h, content=json.dumps({"flavor": {"name": name}})
    )
    assert r.status_code == 413
    assert r.json()["overLimit"]["message"].startswith("Request is too large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is cut at the limit
        yield b'{"network": {"name": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"n" * 1024
        yield b'"}}'

    r = client.post("/networking/v2.0/networks", headers=h, content=chunks())
    assert r.status_code == 413
    assert r.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"


def test_an_agents_large_report_is_taken(client: TestClient) -> None:
    """A whole host's report is larger than an OpenStack call's limit, and is accepted."""
    h = token(client)
    reports = [
        {"id": f"not-a-server-{i}", "plan_revision": 0, "status": "applied", "rules": []}
        for i in range(1500)
    ]
    body = json.dumps({"revision": 0, "servers": reports})
    assert len(body) > MAX_BODY_BYTES
    r = client.put(
        "/qosplane/v1/hosts/localhost/report",
        headers={**h, "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code != 413, r.text
    assert r.status_code < 500, r.text


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        # past Python's 4300-digit limit for int(): a ValueError that is no JSONDecodeError
        ("/networking/v2.0/qos/policies", '{"policy": {"name": ' + "1" * 5000 + "}}"),
        # not JSON (RFC 8259), and stored they made every later listing a 500
        ("/image/v2/images", '{"name": "x", "container_format": NaN}'),
        ("/image/v2/images", '{"name": "y", "min_disk": Infinity}'),
    ],
)
def test_numbers_json_cannot_carry_are_a_400(client: TestClient, path: str, raw: str) -> None:
    h = token(client)
    r = client.post(path, headers={**h, "Content-Type": "application/json"}, content=raw)
    assert r.status_code == 400, r.text
    assert client.get(path, headers=h).status_code == 200
