"""schemathesis against the served OpenAPI document: no request, valid or not, makes a 5xx.

The path parameters are pinned to ids of real resources created first (and one id that
does not exist), so the fuzzer reaches the handlers behind them instead of stopping at 404.
Runs on SQLite and PostgreSQL: PostgreSQL refuses over-long strings that SQLite keeps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from starlette.testclient import TestClient

from qosplane.api.app import build_app
from qosplane.api.auth import Context, TokenSigner, utcnow
from qosplane.store.database import make_engine
from tests.conftest import ADMIN, SECRET, services_of, store_at_head
from tests.test_api import NOVA, make_flavor, make_network, make_server, token

MISSING = "00000000-0000-0000-0000-000000000000"
COLLECTIONS = [
    "bandwidth_limit_rules",
    "dscp_marking_rules",
    "minimum_bandwidth_rules",
    "packet_rate_limit_rules",
    "minimum_packet_rate_rules",
]


def _real_ids(c: TestClient, h: dict[str, str]) -> dict[str, list[str]]:
    """One of each resource; path parameter name -> values the fuzzer may use."""
    flavor = make_flavor(c, h, name="fz")
    c.post(
        f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
        headers=h,
        json={"extra_specs": {"quota:cpu_shares": "512"}},
    )
    net = make_network(c, h, name="fz-net", cidr="10.9.0.0/24")
    server = make_server(c, h, [net], flavor=flavor, name="fz-vm")
    port = c.get(f"/networking/v2.0/ports?device_id={server['id']}", headers=h).json()["ports"][0]
    policy = c.post(
        "/networking/v2.0/qos/policies", headers=h, json={"policy": {"name": "fz-pol"}}
    ).json()["policy"]["id"]
    rule = c.post(
        f"/networking/v2.0/qos/policies/{policy}/bandwidth_limit_rules",
        headers=h,
        json={"bandwidth_limit_rule": {"max_kbps": 1000}},
    ).json()["bandwidth_limit_rule"]["id"]
    sg = c.post(
        "/networking/v2.0/security-groups", headers=h, json={"security_group": {"name": "fz"}}
    ).json()["security_group"]["id"]
    image = c.post("/image/v2/images", headers=h, json={"name": "fz-img"}).json()["id"]
    c.post("/compute/v2.1/os-keypairs", headers=h, json={"keypair": {"name": "fz-key"}})
    vol = f"/volume/v3/{ADMIN.project_id}"
    spec = c.post(
        f"{vol}/qos-specs",
        headers=h,
        json={"qos_specs": {"name": "fz-spec", "consumer": "front-end", "read_iops_sec": "10"}},
    ).json()["qos_specs"]["id"]
    vtype = c.post(f"{vol}/types", headers=h, json={"volume_type": {"name": "fz-type"}}).json()[
        "volume_type"
    ]["id"]
    volume = c.post(
        f"{vol}/volumes", headers=h, json={"volume": {"name": "fz-vol", "size": 1}}
    ).json()["volume"]["id"]
    agg = c.post(
        "/compute/v2.1/os-aggregates", headers={**h, **NOVA}, json={"aggregate": {"name": "fz"}}
    ).json()["aggregate"]["id"]
    roles = [r["id"] for r in c.get("/identity/v3/roles", headers=h).json()["roles"]]
    entry = c.post(
        "/networking/v2.0/rbac-policies",
        headers=h,
        json={
            "rbac_policy": {
                "object_type": "qos_policy",
                "object_id": policy,
                "action": "access_as_shared",
                "target_tenant": "fz-target",
            }
        },
    ).json()["rbac_policy"]["id"]
    # Identity paths get victims of their own: a fuzzed DELETE or PATCH of the admin would
    # leave every later example with a void token (401), fuzzing nothing.
    victim_project = c.post(
        "/identity/v3/projects", headers=h, json={"project": {"name": "fz-project"}}
    ).json()["project"]["id"]
    victim_user = c.post(
        "/identity/v3/users", headers=h, json={"user": {"name": "fz-user", "password": "pw"}}
    ).json()["user"]["id"]
    victim_role = c.post(
        "/identity/v3/roles", headers=h, json={"role": {"name": "fz-role"}}
    ).json()["role"]["id"]
    # A domain of its own too: a fuzzed PATCH disabling `default` would void every token.
    victim_domain = c.post(
        "/identity/v3/domains", headers=h, json={"domain": {"name": "fz-domain"}}
    ).json()["domain"]["id"]
    victim_group = c.post(
        "/identity/v3/groups", headers=h, json={"group": {"name": "fz-group"}}
    ).json()["group"]["id"]
    subnet = c.get(f"/networking/v2.0/subnets?network_id={net}", headers=h).json()["subnets"][0]
    return {
        "flavor_id": [flavor],
        "server_id": [server["id"]],
        "network_id": [net],
        "subnet_id": [subnet["id"]],
        "port_id": [port["id"]],
        "policy_id": [policy],
        "rule_id": [rule],
        "collection": COLLECTIONS,
        "rule_type": ["bandwidth_limit", "dscp_marking"],
        "sg_id": [sg],
        "image_id": [image],
        "spec_id": [spec],
        "type_id": [vtype],
        "volume_id": [volume],
        "ref": [str(agg), "1"],
        "key": ["quota:cpu_shares"],
        "alias": ["qos", "port-hints"],
        "project_id": [ADMIN.project_id],
        "user_id": [ADMIN.user_id],
        "role_id": roles,
        "entry_id": [entry],
        "prior_role_id": [victim_role, "member"],
        "implied_role_id": ["reader", victim_role],
        "victim_project_id": [victim_project],
        "victim_user_id": [victim_user],
        "domain_id": [victim_domain],
        "group_id": [victim_group],
        "keypair_name": ["fz-key"],
        "host_name": ["localhost"],
    }


def _pin(doc: dict[str, Any], ids: dict[str, list[str]]) -> dict[str, Any]:
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            for param in operation["parameters"]:
                name = param["name"]
                if name == "name":
                    name = "keypair_name" if "os-keypairs" in path else "host_name"
                if path.startswith("/identity/v3/") and name in ("project_id", "user_id"):
                    name = f"victim_{name}"
                param["schema"] = {"type": "string", "enum": [*ids[name], MISSING]}
    # A long poll per example would make the run minutes long; tests/test_api_hosts.py
    # covers the watch.
    doc["paths"].pop("/qosplane/v1/hosts/{name}/watch")
    return doc


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with store_at_head(request, tmp_path, request.param) as url:
        engine = make_engine(url)
        app = build_app(services_of(engine))
        try:
            with TestClient(app) as c:
                ids = _real_ids(c, token(c))
                doc = _pin(c.get("/qosplane/v1/openapi.json").json(), ids)
            schema = schemathesis.openapi.from_dict(doc)
            schema.app = app
            yield schema
        finally:
            engine.dispose()


ADMIN_TOKEN = TokenSigner(SECRET).issue(
    Context(
        ADMIN.user_id, "admin", ADMIN.project_id, "admin", ("admin",), utcnow() + timedelta(days=1)
    )
)
# CI runs a light pass; QOSPLANE_FUZZ_EXAMPLES=100 digs deeper by hand.
EXAMPLES_PER_OPERATION_AND_MODE = int(os.environ.get("QOSPLANE_FUZZ_EXAMPLES", "8"))


def _check(case: Any) -> None:
    response = case.call(headers={"X-Auth-Token": ADMIN_TOKEN, **NOVA})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code} "
        f"{response.text[:300]}"
    )
    # Every refusal says what was wrong, in the service's own shape.
    if response.status_code >= 400:
        assert re.search(r'"(message|NeutronError)"', response.text), response.text


def test_no_request_makes_a_5xx(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 100
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case: Any) -> None:
                _check(case)

            run()
