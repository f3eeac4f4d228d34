"""Hosts as Nova shows them (hypervisors, aggregates, zones) and as agents use them
(register, heartbeat, watch, report), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from qosplane.api.watch import HostWatch
from tests.test_api import NOVA, make_flavor, make_network, make_server, member_token, token

HOSTS = "/qosplane/v1/hosts"
AGG = "/compute/v2.1/os-aggregates"


def register(client: TestClient, h: dict[str, str], name: str, **facts: Any) -> dict[str, Any]:
    r = client.post(HOSTS, headers=h, json={"host": {"name": name, "facts": facts}})
    assert r.status_code == 200, r.text
    host: dict[str, Any] = r.json()["host"]
    return host


def revision(client: TestClient, h: dict[str, str], name: str = "localhost") -> int:
    rev: int = client.get(f"{HOSTS}/{name}", headers=h).json()["host"]["revision"]
    return rev


def test_the_local_host_is_registered_and_re_registering_keeps_identity(
    client: TestClient,
) -> None:
    h = token(client)
    local = client.get(f"{HOSTS}/localhost", headers=h).json()["host"]
    assert (local["zone"], local["state"], local["facts"]["cgroup"]) == ("nova", "up", "v1")
    again = register(client, h, "localhost", cgroup="v2", ovs_bridge="br-test")
    assert again["id"] == local["id"]
    assert again["facts"]["cgroup"] == "v2"
    assert again["revision"] == local["revision"] + 1  # new facts change every plan
    same = register(client, h, "localhost", cgroup="v2", ovs_bridge="br-test")
    assert same["revision"] == again["revision"]


def test_bad_facts_and_names_are_400_naming_the_field(client: TestClient) -> None:
    h = token(client)
    r = client.post(HOSTS, headers=h, json={"host": {"name": "h1", "facts": {"cgroup": "v3"}}})
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"].startswith("host.cgroup")
    r = client.post(HOSTS, headers=h, json={"host": {"name": "", "facts": {}}})
    assert r.status_code == 400
    assert "host.name" in r.json()["badRequest"]["message"]
    assert (
        client.post(HOSTS, headers=member_token(client), json={"host": {"name": "x"}}).status_code
        == 403
    )


def test_registered_facts_drive_the_compilation(client: TestClient) -> None:
    h = token(client)
    register(client, h, "localhost", ovs_bridge="br-qosplane", cgroup="v2")
    server = make_server(client, h, [make_network(client, h)])
    plan = client.get(f"/qosplane/v1/servers/{server['id']}/plan", headers=h).json()["plan"]
    assert "br-qosplane" in plan["domain_xml"]


def test_hypervisors_are_the_registered_hosts_admin_only(client: TestClient) -> None:
    h = token(client)
    register(client, h, "compute-2")
    listed = client.get("/compute/v2.1/os-hypervisors/detail", headers={**h, **NOVA}).json()
    names = [x["hypervisor_hostname"] for x in listed["hypervisors"]]
    assert names == ["localhost", "compute-2"]
    assert all(x["state"] == "up" and len(str(x["id"])) == 36 for x in listed["hypervisors"])
    old = client.get("/compute/v2.1/os-hypervisors", headers=h).json()["hypervisors"]
    assert [x["id"] for x in old] == [1, 2]  # integer ids before microversion 2.53
    assert (
        client.get("/compute/v2.1/os-hypervisors/2", headers=h).json()["hypervisor"][
            "hypervisor_hostname"
        ]
        == "compute-2"
    )
    r = client.get("/compute/v2.1/os-hypervisors/detail", headers=member_token(client))
    assert r.status_code == 403
    assert r.json()["forbidden"]["code"] == 403


def test_zones_come_from_aggregates_and_place_servers(client: TestClient) -> None:
    h = token(client)
    register(client, h, "compute-2")
    net = make_network(client, h)
    flavor = make_flavor(client, h, name="f-az")

    def create(zone: str, name: str) -> Any:
        return client.post(
            "/compute/v2.1/servers",
            headers={**h, **NOVA},
            json={
                "server": {
                    "name": name,
                    "flavorRef": flavor,
                    "networks": [{"uuid": net}],
                    "availability_zone": zone,
                }
            },
        )

    missing = create("az_vlan", "early")
    assert missing.status_code == 400
    assert (
        "The requested availability zone is not available"
        in missing.json()["badRequest"]["message"]
    )
    agg = client.post(
        AGG, headers=h, json={"aggregate": {"name": "agg1", "availability_zone": "az_vlan"}}
    )
    assert agg.status_code == 200
    agg_id = agg.json()["aggregate"]["id"]
    assert client.get(f"{AGG}/agg1", headers=h).status_code == 404  # a name is not an id
    unknown = client.post(f"{AGG}/{agg_id}/action", headers=h, json={"add_host": {"host": "nope"}})
    assert unknown.status_code == 404
    rev = revision(client, h, "compute-2")
    added = client.post(
        f"{AGG}/{agg_id}/action", headers=h, json={"add_host": {"host": "compute-2"}}
    )
    assert added.json()["aggregate"]["hosts"] == ["compute-2"]
    assert revision(client, h, "compute-2") == rev + 1
    again = client.post(
        f"{AGG}/{agg_id}/action", headers=h, json={"add_host": {"host": "compute-2"}}
    )
    assert again.status_code == 409
    zones = client.get("/compute/v2.1/os-availability-zone/detail", headers=h).json()
    by_zone = {z["zoneName"]: z["hosts"] for z in zones["availabilityZoneInfo"]}
    assert sorted(by_zone) == ["az_vlan", "nova"]
    assert list(by_zone["az_vlan"]) == ["compute-2"]

    placed = create("az_vlan", "in-az")
    assert placed.status_code == 202
    shown = client.get(
        f"/compute/v2.1/servers/{placed.json()['server']['id']}", headers={**h, **NOVA}
    ).json()["server"]
    assert (shown["OS-EXT-AZ:availability_zone"], shown["OS-EXT-SRV-ATTR:host"]) == (
        "az_vlan",
        "compute-2",
    )
    forced = create("nova:localhost", "forced")
    assert forced.status_code == 202
    wrong = create("nova:compute-2", "wrong")
    assert wrong.status_code == 400
    assert "No valid host" in wrong.json()["badRequest"]["message"]

    busy = client.delete(f"{AGG}/{agg_id}", headers=h)
    assert busy.status_code == 400
    client.post(f"{AGG}/{agg_id}/action", headers=h, json={"remove_host": {"host": "compute-2"}})
    assert client.delete(f"{AGG}/{agg_id}", headers=h).status_code == 200
    assert client.get(AGG, headers=h).json()["aggregates"] == []
    assert (
        client.post(
            AGG, headers=member_token(client), json={"aggregate": {"name": "x"}}
        ).status_code
        == 403
    )


def test_watch_answers_at_once_when_behind_and_times_out_when_current(
    client: TestClient,
) -> None:
    h = token(client)
    server = make_server(client, h, [make_network(client, h)])
    state = client.get(f"{HOSTS}/localhost/watch?since=0&timeout=5", headers=h).json()
    assert state["changed"] is True
    assert [s["id"] for s in state["servers"]] == [server["id"]]
    assert state["servers"][0]["plan"]["cgroup"]
    current = client.get(f"{HOSTS}/localhost/watch?since={state['revision']}&timeout=0", headers=h)
    assert current.json() == {"host": "localhost", "revision": state["revision"], "changed": False}
    bad = client.get(f"{HOSTS}/localhost/watch?since=x", headers=h)
    assert bad.status_code == 400
    assert client.get(f"{HOSTS}/nope/watch", headers=h).status_code == 404


def test_a_change_wakes_a_waiting_watch(client: TestClient) -> None:
    h = token(client)
    flavor = make_flavor(client, h, name="f-watch")
    make_server(client, h, [make_network(client, h)], flavor=flavor)
    watch: HostWatch = client.app.state.services.watch  # type: ignore[attr-defined]
    watch.recheck_s = 600.0  # only a wake-up can end the wait before the timeout
    since = revision(client, h)
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            client.get(f"{HOSTS}/localhost/watch?since={since}&timeout=60", headers=h).json()
        )
    )
    waiting.start()
    for _ in range(500):
        if watch.is_watched("localhost"):
            break
        threading.Event().wait(0.01)
    assert watch.is_watched("localhost")
    r = client.post(
        f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
        headers=h,
        json={"extra_specs": {"quota:cpu_shares": "256"}},
    )
    assert r.status_code == 200
    waiting.join(timeout=30)
    assert not waiting.is_alive(), "the change did not wake the watch"
    assert answers[0]["changed"] is True
    assert answers[0]["revision"] > since
    assert answers[0]["servers"][0]["plan"]["cgroup"]["v1"] == {"cpu.shares": "256"}


def test_create_and_delete_bump_the_host_revision(client: TestClient) -> None:
    h = token(client)
    before = revision(client, h)
    server = make_server(client, h, [make_network(client, h)])
    created = revision(client, h)
    assert created > before
    assert client.delete(f"/compute/v2.1/servers/{server['id']}", headers=h).status_code == 204
    assert revision(client, h) == created + 1


def test_reports_set_server_status_and_applied_revision(client: TestClient) -> None:
    h = token(client)
    server = make_server(client, h, [make_network(client, h)])
    status = client.get(f"/qosplane/v1/servers/{server['id']}/status", headers=h).json()
    plan_rev = status["plan_revision"]
    rev = revision(client, h)

    def report(state: str, plan_revision: int, **rule: object) -> int:
        """Send one server's report; `rule` overrides fields of its one rule."""
        code: int = client.put(
            f"{HOSTS}/localhost/report",
            headers=h,
            json={
                "revision": rev,
                "servers": [
                    {
                        "id": server["id"],
                        "plan_revision": plan_revision,
                        "status": state,
                        "rules": [{"kind": "bandwidth", "device": "tap", "status": state, **rule}],
                    }
                ],
            },
        ).status_code
        return code

    assert report("failed", plan_rev) == 204
    shown = client.get(f"/compute/v2.1/servers/{server['id']}", headers=h).json()["server"]
    assert shown["status"] == "ERROR"
    assert report("applied", plan_rev - 1) == 204  # a stale plan's success proves nothing
    assert (
        client.get(f"/compute/v2.1/servers/{server['id']}", headers=h).json()["server"]["status"]
        == "ERROR"
    )
    assert report("applied", plan_rev) == 204
    status = client.get(f"/qosplane/v1/servers/{server['id']}/status", headers=h).json()
    assert status["server"]["status"] == "ACTIVE"
    # Stored as the agent's typed report: every field of a rule, the unsent ones defaulted.
    assert status["report"]["rules"] == [
        {
            "kind": "bandwidth",
            "device": "tap",
            "direction": "",
            "status": "applied",
            "mechanism": "",
            "polices": False,
            "reason": "",
        }
    ]
    assert client.get(f"{HOSTS}/localhost", headers=h).json()["host"]["applied_revision"] == rev
    assert report("exploded", plan_rev) == 400
    # A malformed rule refuses the whole report, naming the field; the last one stays.
    assert report("failed", plan_rev, status="exploded") == 400
    assert report("failed", plan_rev, device=7) == 400
    kept = client.get(f"/qosplane/v1/servers/{server['id']}/status", headers=h).json()
    assert (kept["report"]["status"], kept["server"]["status"]) == ("applied", "ACTIVE")
    bad = client.put(
        f"{HOSTS}/localhost/report",
        headers=h,
        json={"revision": rev, "servers": [{"id": server["id"], "status": "applied"}]},
    )
    assert "servers[0].plan_revision" in bad.json()["badRequest"]["message"]
    ahead = client.post(
        f"{HOSTS}/localhost/heartbeat", headers=h, json={"applied_revision": rev + 5}
    )
    assert ahead.status_code == 400
    assert "heartbeat.applied_revision" in ahead.json()["badRequest"]["message"]
    other = client.get(f"/qosplane/v1/servers/{server['id']}/status", headers=member_token(client))
    assert other.status_code == 404


@pytest.mark.postgres
def test_a_change_through_another_worker_wakes_the_watch_on_postgresql(
    tmp_path: Any, request: Any
) -> None:
    """Two API workers on one PostgreSQL database: a watch on one is woken by a change
    committed through the other (LISTEN/NOTIFY), not by its periodic re-read."""
    from qosplane.api.app import build_app
    from qosplane.store.database import downgrade, make_engine, upgrade
    from tests.conftest import services_of

    engine = make_engine(request.getfixturevalue("pg_url"))
    downgrade(engine)
    upgrade(engine)
    first = services_of(engine)
    second = services_of(engine)
    first.watch.recheck_s = 600.0
    try:
        with TestClient(build_app(first)) as a, TestClient(build_app(second)) as b:
            h = token(a)
            flavor = make_flavor(b, h, name="f-pg")
            make_server(b, h, [make_network(b, h)], flavor=flavor)
            since = revision(a, h)
            answers: list[dict[str, Any]] = []
            waiting = threading.Thread(
                target=lambda: answers.append(
                    a.get(f"{HOSTS}/localhost/watch?since={since}&timeout=60", headers=h).json()
                )
            )
            waiting.start()
            for _ in range(500):
                if first.watch.is_watched("localhost"):
                    break
                threading.Event().wait(0.01)
            b.post(
                f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
                headers=h,
                json={"extra_specs": {"quota:cpu_shares": "128"}},
            )
            waiting.join(timeout=30)
            assert not waiting.is_alive(), "NOTIFY did not wake the other worker's watch"
            assert answers[0]["servers"][0]["plan"]["cgroup"]["v1"] == {"cpu.shares": "128"}
    finally:
        downgrade(engine)
        engine.dispose()


def test_a_server_on_an_agent_host_builds_until_the_agent_applies_it(client: TestClient) -> None:
    h = token(client)
    register(client, h, "compute-9")  # an agent registering: its host is now managed
    net = make_network(client, h)
    r = client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={
            "server": {
                "name": "waits",
                "flavorRef": make_flavor(client, h, name="f-build"),
                "networks": [{"uuid": net}],
                "availability_zone": "nova:compute-9",
            }
        },
    )
    server_id = r.json()["server"]["id"]
    shown = client.get(f"/compute/v2.1/servers/{server_id}", headers=h).json()["server"]
    assert shown["status"] == "BUILD"
    # Nova's building server: no error state, no fault, not yet powered on.
    assert (shown["OS-EXT-STS:vm_state"], shown["OS-EXT-STS:task_state"]) == (
        "building",
        "spawning",
    )
    assert "fault" not in shown
    assert shown["OS-EXT-STS:power_state"] == 0
    status = client.get(f"/qosplane/v1/servers/{server_id}/status", headers=h).json()
    client.put(
        f"{HOSTS}/compute-9/report",
        headers=h,
        json={
            "revision": revision(client, h, "compute-9"),
            "servers": [
                {"id": server_id, "plan_revision": status["plan_revision"], "status": "partial"}
            ],
        },
    )
    shown = client.get(f"/compute/v2.1/servers/{server_id}", headers=h).json()["server"]
    assert shown["status"] == "ACTIVE"
    assert shown["OS-EXT-STS:power_state"] == 1  # its agent runs it
    # The all-in-one's own host has no agent here: its servers are ACTIVE once planned,
    # and nothing runs them (NOSTATE, not RUNNING).
    plain = make_server(client, h, [net], name="plain")
    assert plain["status"] == "ACTIVE"
    assert plain["OS-EXT-STS:power_state"] == 0


def test_servers_are_not_placed_on_a_host_whose_agent_went_silent(client: TestClient) -> None:
    h = token(client)
    register(client, h, "compute-7")
    # The agent's last word was two minutes ago (longer than Nova's service_down_time).
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE hosts SET agent_seen_at = '2000-01-01T00:00:00.000000Z' WHERE name = 'compute-7'"
        )
    hypervisors = client.get("/compute/v2.1/os-hypervisors/detail", headers={**h, **NOVA}).json()
    states = {x["hypervisor_hostname"]: x["state"] for x in hypervisors["hypervisors"]}
    assert states == {"localhost": "up", "compute-7": "down"}
    net = make_network(client, h)
    forced = client.post(
        "/compute/v2.1/servers",
        headers={**h, **NOVA},
        json={
            "server": {
                "name": "nowhere",
                "flavorRef": make_flavor(client, h, name="f-down"),
                "networks": [{"uuid": net}],
                "availability_zone": "nova:compute-7",
            }
        },
    )
    # Nova accepts it, and the scheduler's NoValidHost leaves it in ERROR with that fault.
    assert forced.status_code == 202, forced.text
    shown = client.get(
        f"/compute/v2.1/servers/{forced.json()['server']['id']}", headers={**h, **NOVA}
    ).json()["server"]
    assert (shown["status"], shown["OS-EXT-STS:vm_state"]) == ("ERROR", "error")
    assert shown["OS-EXT-SRV-ATTR:host"] is None
    assert shown["fault"]["message"].startswith("No valid host was found.")
    assert make_server(client, h, [net], name="elsewhere")["OS-EXT-SRV-ATTR:host"] == "localhost"


def test_new_facts_recompile_the_plans_of_the_host_alone(client: TestClient) -> None:
    """A server placed before its host's agent registered was compiled for the default (the
    seed's OVS) host; the agent's facts recompile it, and servers elsewhere are untouched."""
    h = token(client)
    register(client, h, "compute-2")
    net = make_network(client, h)
    flavor = make_flavor(client, h, name="f-out10")
    r = client.post(
        f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
        headers=h,
        json={"extra_specs": {"quota:vif_outbound_average": "1250"}},  # kB/s: 10 Mbit/s
    )
    assert r.status_code == 200, r.text

    def server_on(host: str) -> str:
        r = client.post(
            "/compute/v2.1/servers",
            headers={**h, **NOVA},
            json={
                "server": {
                    "name": f"on-{host}",
                    "flavorRef": flavor,
                    "networks": [{"uuid": net}],
                    "availability_zone": f"nova:{host}",
                }
            },
        )
        assert r.status_code == 202, r.text
        server_id: str = r.json()["server"]["id"]
        return server_id

    def plan(server_id: str) -> dict[str, Any]:
        got: dict[str, Any] = client.get(f"/qosplane/v1/servers/{server_id}/plan", headers=h).json()
        assert got["server"]["host"] in ("localhost", "compute-2")
        return dict(got["plan"])

    def outbound(server_id: str) -> dict[str, Any]:
        (limit,) = [
            e
            for e in plan(server_id)["effective"]
            if e["device"].startswith("tap") and e["direction"] == "egress"
        ]
        return dict(limit)

    here, there = server_on("localhost"), server_on("compute-2")
    assert outbound(here)["enforced_by"] is None  # OVS deletes libvirt's police
    here_rev, there_rev = plan(here)["revision"], plan(there)["revision"]
    register(client, h, "localhost", vif_type="hybrid")
    assert plan(here)["revision"] == here_rev + 1
    assert outbound(here)["enforced_by"]["layer"] == "libvirt"
    assert plan(there)["revision"] == there_rev
    register(client, h, "localhost", vif_type="hybrid")  # the same facts again
    assert plan(here)["revision"] == here_rev + 1
