"""Several API workers on one database lose no update (issue 11).

Each writer below is a worker of its own: its own app, engine and connection pool, as
`qosplane serve` processes sharing one PostgreSQL database are (and, on SQLite, processes
sharing one file). The compare-and-bump must then be made by the database, not by a value
a worker read earlier."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qosplane.api.app import build_app
from qosplane.store.database import make_engine
from tests.conftest import services_of, store_at_head
from tests.test_api import NET, make_flavor, make_network, token

WORKERS = 4
REQUESTS = 25  # per worker


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[TestClient]]:
    with store_at_head(request, tmp_path, request.param) as url:
        engines = [make_engine(url) for _ in range(WORKERS)]
        try:
            with ExitStack() as stack:
                yield [stack.enter_context(TestClient(build_app(services_of(e)))) for e in engines]
        finally:
            for engine in engines:
                engine.dispose()


def _race(clients: list[TestClient], request: Callable[[TestClient, int], int]) -> Counter[int]:
    """Every worker sends REQUESTS requests at once; the status codes they got."""
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def run(client: TestClient) -> None:
        start.wait()
        for i in range(REQUESTS):
            code = request(client, i)
            with lock:
                codes[code] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(codes.values()) == len(clients) * REQUESTS, "a worker hung"
    return codes


def _port_and_policy(client: TestClient, h: dict[str, str]) -> tuple[str, str]:
    net = make_network(client, h)
    port = client.post(f"{NET}/ports", headers=h, json={"port": {"network_id": net}})
    assert port.status_code == 201, port.text
    policy = client.post(f"{NET}/qos/policies", headers=h, json={"policy": {"name": "p"}})
    assert policy.status_code == 201, policy.text
    return port.json()["port"]["id"], policy.json()["policy"]["id"]


def _revision(client: TestClient, h: dict[str, str], path: str, key: str) -> int:
    number: int = client.get(path, headers=h).json()[key]["revision_number"]
    return number


def test_if_match_writers_on_the_same_revision_cannot_both_succeed(
    workers: list[TestClient],
) -> None:
    h = token(workers[0])
    port, policy = _port_and_policy(workers[0], h)
    before = _revision(workers[0], h, f"{NET}/ports/{port}", "port")

    def set_policy(client: TestClient, i: int) -> int:
        seen = _revision(client, h, f"{NET}/ports/{port}", "port")
        r = client.put(
            f"{NET}/ports/{port}",
            headers={**h, "If-Match": f"revision_number={seen}"},
            json={"port": {"qos_policy_id": policy if i % 2 else None}},
        )
        code: int = r.status_code
        return code

    codes = _race(workers, set_policy)
    assert set(codes) <= {200, 412}, codes
    after = _revision(workers[0], h, f"{NET}/ports/{port}", "port")
    # Each success moved the revision by exactly one: no two succeeded on the same N.
    assert after - before == codes[200], codes
    assert codes[200] >= REQUESTS  # and the race did not starve everyone


def test_writers_without_if_match_all_count(workers: list[TestClient]) -> None:
    h = token(workers[0])
    port, policy = _port_and_policy(workers[0], h)
    before = _revision(workers[0], h, f"{NET}/ports/{port}", "port")

    def set_policy(client: TestClient, i: int) -> int:
        body = {"port": {"qos_policy_id": policy if i % 2 else None}}
        code: int = client.put(f"{NET}/ports/{port}", headers=h, json=body).status_code
        return code

    codes = _race(workers, set_policy)
    assert codes == Counter({200: WORKERS * REQUESTS})
    after = _revision(workers[0], h, f"{NET}/ports/{port}", "port")
    assert after - before == WORKERS * REQUESTS


def test_a_rule_update_without_if_match_is_never_a_precondition_failure(
    workers: list[TestClient],
) -> None:
    h = token(workers[0])
    _, policy = _port_and_policy(workers[0], h)
    rules = f"{NET}/qos/policies/{policy}/bandwidth_limit_rules"
    rule = workers[0].post(rules, headers=h, json={"bandwidth_limit_rule": {"max_kbps": 1000}})
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["bandwidth_limit_rule"]["id"]
    before = _revision(workers[0], h, f"{NET}/qos/policies/{policy}", "policy")

    def update(client: TestClient, i: int) -> int:
        body = {"bandwidth_limit_rule": {"max_kbps": 1000 + i}}
        code: int = client.put(f"{rules}/{rule_id}", headers=h, json=body).status_code
        return code

    codes = _race(workers, update)
    assert codes == Counter({200: WORKERS * REQUESTS})
    after = _revision(workers[0], h, f"{NET}/qos/policies/{policy}", "policy")
    assert after - before == WORKERS * REQUESTS


def test_setting_and_deleting_one_extra_spec_from_several_workers_is_never_a_500(
    workers: list[TestClient],
) -> None:
    h = token(workers[0])
    flavor = make_flavor(workers[0], h, name="f-race")
    specs = f"/compute/v2.1/flavors/{flavor}/os-extra_specs"

    def set_or_delete(client: TestClient, i: int) -> int:
        if i % 2:
            r = client.delete(f"{specs}/quota:cpu_shares", headers=h)
        else:
            body = {"extra_specs": {"quota:cpu_shares": str(100 + i)}}
            r = client.post(specs, headers=h, json=body)
        code: int = r.status_code
        return code

    codes = _race(workers, set_or_delete)
    assert set(codes) <= {200, 404}, codes  # 404: deleted by another worker first
    assert codes[200] >= WORKERS * REQUESTS // 2


def test_if_match_guards_every_update_and_each_update_counts_once(
    workers: list[TestClient],
) -> None:
    """Neutron's revision plugin: If-Match is checked for a rename too, and an update that
    renames and rebinds at once raises the revision by one."""
    client, h = workers[0], token(workers[0])
    port, policy = _port_and_policy(client, h)
    seen = _revision(client, h, f"{NET}/ports/{port}", "port")
    stale = {**h, "If-Match": f"revision_number={seen + 1}"}
    refused = client.put(f"{NET}/ports/{port}", headers=stale, json={"port": {"name": "x"}})
    assert refused.status_code == 412, refused.text
    assert client.get(f"{NET}/ports/{port}", headers=h).json()["port"]["name"] == ""
    both = {"port": {"name": "y", "qos_policy_id": policy}}
    current = {**h, "If-Match": f"revision_number={seen}"}
    done = client.put(f"{NET}/ports/{port}", headers=current, json=both)
    assert done.status_code == 200, done.text
    shown = done.json()["port"]
    assert (shown["name"], shown["qos_policy_id"], shown["revision_number"]) == (
        "y",
        policy,
        seen + 1,
    )
