"""Neutron QoS under upstream's default policies, for every caller that matters: the admin,
a project's manager, member and reader, and a member of another project. Expected statuses
are neutron/conf/policies/qos.py's (neutron 2131d26f) and what neutron-tempest-plugin's
api/test_qos.py asserts: writes need the manager role, reads the reader role or a shared
policy, a policy one may not read does not exist (404), a visible one one may not change
is 403. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from qosplane.api.auth import Context, utcnow
from tests.conftest import token_for
from tests.test_api import make_network, token

QOS = "/networking/v2.0/qos"
NET = "/networking/v2.0"
PROJECT_A = "project-a"
PROJECT_B = "project-b"

# caller -> (project, effective roles, as Keystone's implied roles give them)
CALLERS = {
    "manager": (PROJECT_A, ("manager", "member", "reader")),
    "member": (PROJECT_A, ("member", "reader")),
    "reader": (PROJECT_A, ("reader",)),
    "other": (PROJECT_B, ("manager", "member", "reader")),
}


def _headers(client: TestClient, caller: str) -> dict[str, str]:
    project, roles = CALLERS[caller]
    return token_for(client, f"{caller}-id", caller, project, project, roles[:1])


@dataclass
class World:
    client: TestClient
    admin: dict[str, str]
    own: str  # project A's policy, made by its manager
    private: str  # the admin's, not shared
    shared: str  # the admin's, shared
    port: str  # a port of project A's member

    def as_(self, caller: str) -> dict[str, str]:
        return self.admin if caller == "admin" else _headers(self.client, caller)

    def policy(self, headers: dict[str, str], **fields: Any) -> str:
        r = self.client.post(f"{QOS}/policies", headers=headers, json={"policy": fields})
        assert r.status_code == 201, r.text
        policy_id: str = r.json()["policy"]["id"]
        return policy_id


@pytest.fixture
def world(client: TestClient) -> World:
    admin = token(client)
    w = World(client, admin, "", "", "", "")
    w.own = w.policy(w.as_("manager"), name="own")
    w.private = w.policy(admin, name="private")
    w.shared = w.policy(admin, name="shared", shared=True)
    for policy_id, headers in ((w.own, w.as_("manager")), (w.shared, admin)):
        r = client.post(
            f"{QOS}/policies/{policy_id}/bandwidth_limit_rules",
            headers=headers,
            json={"bandwidth_limit_rule": {"max_kbps": 1000}},
        )
        assert r.status_code == 201, r.text
    net = make_network(client, w.as_("member"), name="net-a", cidr="10.9.0.0/29")
    r = client.post(f"{NET}/ports", headers=w.as_("member"), json={"port": {"network_id": net}})
    assert r.status_code == 201, r.text
    w.port = r.json()["port"]["id"]
    return w


CALLER_NAMES = ("admin", "manager", "member", "reader", "other")


def _expect(world: World, expected: dict[str, int], call: Callable[[dict[str, str]], Any]) -> None:
    got = {caller: call(world.as_(caller)).status_code for caller in CALLER_NAMES}
    assert got == expected


def test_reading_a_policy(world: World) -> None:
    c = world.client
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 404},
        lambda h: c.get(f"{QOS}/policies/{world.own}", headers=h),
    )
    _expect(
        world,
        {"admin": 200, "manager": 404, "member": 404, "reader": 404, "other": 404},
        lambda h: c.get(f"{QOS}/policies/{world.private}", headers=h),
    )
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 200},
        lambda h: c.get(f"{QOS}/policies/{world.shared}", headers=h),
    )


def test_listing_shows_only_what_each_caller_may_read(world: World) -> None:
    def names(caller: str) -> set[str]:
        r = world.client.get(f"{QOS}/policies", headers=world.as_(caller))
        assert r.status_code == 200
        return {p["name"] for p in r.json()["policies"]}

    assert names("admin") == {"own", "private", "shared"}
    assert names("member") == names("reader") == {"own", "shared"}
    assert names("other") == {"shared"}


def test_creating_a_policy_needs_the_manager_role(world: World) -> None:
    _expect(
        world,
        {"admin": 201, "manager": 201, "member": 403, "reader": 403, "other": 201},
        lambda h: world.client.post(f"{QOS}/policies", headers=h, json={"policy": {"name": "n"}}),
    )
    r = world.client.post(
        f"{QOS}/policies",
        headers=world.as_("manager"),
        json={"policy": {"name": "theirs", "project_id": PROJECT_B}},
    )
    assert r.status_code == 403  # a manager of A is not one of B
    assert r.json()["NeutronError"]["message"] == (
        "Policy doesn't allow create_policy to be performed."
    )


def test_changing_and_deleting_a_policy(world: World) -> None:
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 403, "reader": 403, "other": 404},
        lambda h: world.client.put(
            f"{QOS}/policies/{world.own}", headers=h, json={"policy": {"description": "x"}}
        ),
    )
    _expect(
        world,
        {"admin": 200, "manager": 403, "member": 403, "reader": 403, "other": 403},
        lambda h: world.client.put(
            f"{QOS}/policies/{world.shared}", headers=h, json={"policy": {"description": "y"}}
        ),
    )
    victims = {caller: world.policy(world.as_("manager"), name=f"v-{caller}") for caller in CALLERS}
    victims["admin"] = world.policy(world.as_("manager"), name="v-admin")
    got = {
        caller: world.client.delete(
            f"{QOS}/policies/{victims[caller]}", headers=world.as_(caller)
        ).status_code
        for caller in CALLER_NAMES
    }
    assert got == {"admin": 204, "manager": 204, "member": 403, "reader": 403, "other": 404}


def test_rules_follow_their_policy_owner(world: World) -> None:
    c = world.client
    body = {"dscp_marking_rule": {"dscp_mark": 26}}
    fresh = {caller: world.policy(world.as_("manager"), name=f"r-{caller}") for caller in CALLERS}
    fresh["admin"] = world.policy(world.as_("manager"), name="r-admin")
    got = {
        caller: c.post(
            f"{QOS}/policies/{fresh[caller]}/dscp_marking_rules",
            headers=world.as_(caller),
            json=body,
        ).status_code
        for caller in CALLER_NAMES
    }
    # Another project's create is 403, not 404: Neutron hides only PUT and DELETE targets
    # (neutron-tempest-plugin test_rule_create_forbidden_for_regular_projects).
    assert got == {"admin": 201, "manager": 201, "member": 403, "reader": 403, "other": 403}
    shared_rule = {"dscp_marking_rule": {"dscp_mark": 10}}
    _expect(
        world,
        # visible to all, owned by the admin's project: only the admin writes its rules
        {"admin": 201, "manager": 403, "member": 403, "reader": 403, "other": 403},
        lambda h: c.post(
            f"{QOS}/policies/{world.shared}/dscp_marking_rules", headers=h, json=shared_rule
        ),
    )
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 404},
        lambda h: c.get(f"{QOS}/policies/{world.own}/bandwidth_limit_rules", headers=h),
    )


def test_rule_types_are_listed_to_readers_and_detailed_to_admins(world: World) -> None:
    c = world.client
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 200},
        lambda h: c.get(f"{QOS}/rule-types", headers=h),
    )
    _expect(
        world,
        {"admin": 200, "manager": 403, "member": 403, "reader": 403, "other": 403},
        lambda h: c.get(f"{QOS}/rule-types/bandwidth_limit", headers=h),
    )


def test_a_foreign_private_policy_cannot_be_attached(world: World) -> None:
    c = world.client
    member = world.as_("member")
    r = c.put(
        f"{NET}/ports/{world.port}", headers=member, json={"port": {"qos_policy_id": world.private}}
    )
    assert r.status_code == 404
    assert r.json()["NeutronError"]["type"] == "QosPolicyNotFound"
    r = c.post(
        f"{NET}/networks",
        headers=member,
        json={"network": {"name": "n2", "qos_policy_id": world.private}},
    )
    assert r.status_code == 404
    for policy_id in (world.shared, world.own):
        r = c.put(
            f"{NET}/ports/{world.port}", headers=member, json={"port": {"qos_policy_id": policy_id}}
        )
        assert r.status_code == 200, r.text
        assert r.json()["port"]["qos_policy_id"] == policy_id


def test_a_policy_the_admin_attached_cannot_be_detached_by_the_member(world: World) -> None:
    c = world.client
    r = c.put(
        f"{NET}/ports/{world.port}",
        headers=world.admin,
        json={"port": {"qos_policy_id": world.private}},
    )
    assert r.status_code == 200, r.text
    r = c.put(
        f"{NET}/ports/{world.port}",
        headers=world.as_("member"),
        json={"port": {"qos_policy_id": None}},
    )
    assert r.status_code == 403
    assert (
        c.get(f"{NET}/ports/{world.port}", headers=world.admin).json()["port"]["qos_policy_id"]
        == world.private
    )


def test_sharing_a_network_is_the_admins(world: World) -> None:
    c = world.client
    body = {"network": {"name": "everyone", "shared": True}}
    assert c.post(f"{NET}/networks", headers=world.as_("member"), json=body).status_code == 403
    assert c.post(f"{NET}/networks", headers=world.admin, json=body).status_code == 201


def test_an_operator_policy_file_overrides_a_default(tmp_path: Any) -> None:
    from qosplane.api.policy import PolicyEngine

    member = Context("m", "m", PROJECT_A, PROJECT_A, ("member", "reader"), utcnow())
    target = {"project_id": PROJECT_A}
    assert not PolicyEngine().allows("create_policy", target, member)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"create_policy": "role:member and project_id:%(project_id)s"\n')
    assert PolicyEngine(policy_file).allows("create_policy", target, member)
    assert not PolicyEngine(policy_file).allows("create_policy", {"project_id": PROJECT_B}, member)


def test_a_reader_changes_no_port_or_network(world: World) -> None:
    """Changing a port or network (its QoS policy included) needs the member role
    (neutron/conf/policies/port.py, network.py): a reader could re-shape enforced limits."""
    c = world.client
    reader = world.as_("reader")
    r = c.put(
        f"{NET}/ports/{world.port}", headers=reader, json={"port": {"qos_policy_id": world.own}}
    )
    assert r.status_code == 403
    net = c.get(f"{NET}/ports/{world.port}", headers=reader).json()["port"]["network_id"]
    r = c.put(
        f"{NET}/networks/{net}", headers=reader, json={"network": {"qos_policy_id": world.own}}
    )
    assert r.status_code == 403
    r = c.post(f"{NET}/networks", headers=reader, json={"network": {"name": "r"}})
    assert r.status_code == 403
    r = c.post(f"{NET}/ports", headers=reader, json={"port": {"network_id": net}})
    assert r.status_code == 403
    member = world.as_("member")
    r = c.put(
        f"{NET}/ports/{world.port}", headers=member, json={"port": {"qos_policy_id": world.own}}
    )
    assert r.status_code == 200, r.text


def test_a_shared_policy_in_use_by_another_project_stays_shared(world: World) -> None:
    c = world.client
    other = world.as_("other")
    net = make_network(c, other, name="net-b", cidr="10.9.1.0/29")
    r = c.post(
        f"{NET}/ports",
        headers=other,
        json={"port": {"network_id": net, "qos_policy_id": world.shared}},
    )
    assert r.status_code == 201, r.text
    r = c.put(
        f"{QOS}/policies/{world.shared}", headers=world.admin, json={"policy": {"shared": False}}
    )
    assert r.status_code == 409
    assert "other objects depend on it" in r.json()["NeutronError"]["message"]
    assert c.get(f"{QOS}/policies/{world.shared}", headers=world.admin).json()["policy"]["shared"]


def test_policy_files_outside_the_one_named_are_not_read(tmp_path: Any, monkeypatch: Any) -> None:
    """oslo.policy looks for policy.yaml and policy.d/ in ~, /etc and the like unless told
    otherwise: a stray file there must not loosen the rules."""
    from qosplane.api.policy import PolicyEngine

    home = tmp_path / "home"
    (home / "policy.d").mkdir(parents=True)
    (home / "policy.d" / "loose.yaml").write_text('"create_policy": ""\n')
    (home / "policy.yaml").write_text('"create_policy": ""\n')
    monkeypatch.setenv("HOME", str(home))
    reader = Context("r", "r", PROJECT_A, PROJECT_A, ("reader",), utcnow())
    target = {"project_id": PROJECT_B}
    assert not PolicyEngine().allows("create_policy", target, reader)
    assert not PolicyEngine(tmp_path / "state" / "policy.yaml").allows(
        "create_policy", target, reader
    )


# --- reads upstream keeps to admins or to those a flavor is shared with ------------------


def _private_flavor(client: TestClient, admin: dict[str, str], shared_with: str) -> str:
    body = {
        "flavor": {
            "name": "private-1",
            "ram": 512,
            "vcpus": 1,
            "disk": 1,
            "os-flavor-access:is_public": False,
        }
    }
    made = client.post("/compute/v2.1/flavors", headers=admin, json=body)
    assert made.status_code == 200, made.text
    flavor: str = made.json()["flavor"]["id"]
    specs = {"extra_specs": {"quota:cpu_shares": "512"}}
    assert (
        client.post(
            f"/compute/v2.1/flavors/{flavor}/os-extra_specs", headers=admin, json=specs
        ).status_code
        == 200
    )
    access = {"addTenantAccess": {"tenant": shared_with}}
    assert (
        client.post(
            f"/compute/v2.1/flavors/{flavor}/action", headers=admin, json=access
        ).status_code
        == 200
    )
    return flavor


@pytest.mark.parametrize(
    ("caller", "status"), [("admin", 200), ("member", 200), ("reader", 200), ("other", 404)]
)
def test_a_private_flavors_extra_specs_are_read_only_where_the_flavor_is_seen(
    world: World, caller: str, status: int
) -> None:
    flavor = _private_flavor(world.client, world.admin, PROJECT_A)
    base = f"/compute/v2.1/flavors/{flavor}"
    h = world.as_(caller)
    assert world.client.get(base, headers=h).status_code == status
    listed = world.client.get(f"{base}/os-extra_specs", headers=h)
    assert listed.status_code == status, listed.text
    one = world.client.get(f"{base}/os-extra_specs/quota:cpu_shares", headers=h)
    assert one.status_code == status, one.text
    if status == 200:
        assert listed.json() == {"extra_specs": {"quota:cpu_shares": "512"}}
        assert one.json() == {"quota:cpu_shares": "512"}


@pytest.mark.parametrize("caller", ["admin", "manager", "member", "reader", "other"])
def test_qos_specs_and_zone_details_are_read_by_admins_alone(world: World, caller: str) -> None:
    client, admin, h = world.client, world.admin, world.as_(caller)
    project = client.get("/identity/v3/projects?name=admin", headers=admin).json()["projects"][0]
    base = f"/volume/v3/{project['id']}/qos-specs"
    made = client.post(
        base, headers=admin, json={"qos_specs": {"name": "gold", "read_iops_sec": "100"}}
    )
    assert made.status_code == 200, made.text
    spec = made.json()["qos_specs"]["id"]
    expected = 200 if caller == "admin" else 403
    for path in (base, f"{base}/{spec}", f"{base}/{spec}/associations"):
        got = client.get(path, headers=h)
        assert got.status_code == expected, (path, got.text)
    zones = "/compute/v2.1/os-availability-zone"
    assert client.get(zones, headers=h).status_code == 200  # names only: anyone
    assert client.get(f"{zones}/detail", headers=h).status_code == expected


def test_every_rule_the_api_names_has_an_upstream_default() -> None:
    """authorize() takes a rule by name; oslo raises PolicyNotRegistered for a name with
    no default, so each one the API uses must be in DEFAULTS."""
    import re
    from pathlib import Path

    from qosplane.openstack.policies import DEFAULTS

    api = Path(__file__).resolve().parent.parent / "src" / "qosplane" / "api"
    files = {f: re.sub(r"\s+", " ", f.read_text()) for f in api.rglob("*.py")}
    sources = list(files.values())
    # A literal as the rule argument of authorize(services, ctx, ...), and every Keystone
    # rule literal, which a handler may pick from a table by method.
    named = {
        m
        for text in sources
        for m in re.findall(
            r"(?:authorize\(services, (?:\w+|context\(request, services\)), |"
            r'policy\.(?:enforce|allows)\()f?"([^"]+)"',
            text,
        )
    } | {m for text in sources for m in re.findall(r'"(identity:[a-z_]+)"', text)}
    # The services' _may(services, ctx, rule, project): Nova's helper adds its prefix.
    for f, text in files.items():
        prefix = "os_compute_api:" if f.parent.name == "nova" else ""
        named |= {prefix + m for m in re.findall(r'_may\(services, \w+, f?"([^"]+)"', text)}
    named.discard("os_compute_api:{rule}")  # _may itself
    named.discard("os_compute_api:{action}:get_all_tenants")
    named |= {f"os_compute_api:servers:{a}:get_all_tenants" for a in ("index", "detail")}
    named.discard("volume:{action.removeprefix('os-')}")
    named |= {"volume:extend", "volume:retype"}
    named.discard("Policy doesn't allow {rule} to be performed.")  # policy.py's message
    # Names built from a value: each value they take.
    from qosplane.model.network_qos import RULE_TYPES

    for verb in ("get", "create", "update", "delete"):
        named.discard(f"{verb}_policy_{{rule_type}}_rule")
        named |= {f"{verb}_policy_{t}_rule" for t in RULE_TYPES}
    named.discard("identity:{verb}_system_grant_for_{actor}")
    named.discard("identity:list_system_grants_for_{actor}")
    named |= {
        f"identity:{verb}_system_grant_for_{actor}"
        for verb in ("create", "check", "revoke")
        for actor in ("user", "group")
    } | {f"identity:list_system_grants_for_{actor}" for actor in ("user", "group")}
    named.discard("os_compute_api:os-flavor-access:{action}")
    named |= {
        f"os_compute_api:os-flavor-access:{a}" for a in ("addTenantAccess", "removeTenantAccess")
    }
    assert len(named) > 60
    assert named <= {d.name for d in DEFAULTS}, sorted(named - {d.name for d in DEFAULTS})


def test_a_policy_file_overrides_nova_cinder_and_keystone_rules(tmp_path: Any) -> None:
    """The same policy.yaml an operator writes for Nova, Cinder and Keystone."""
    from starlette.testclient import TestClient as Client

    from qosplane.api.app import build_app
    from qosplane.api.policy import PolicyEngine
    from qosplane.store.database import make_engine, sqlite_url, upgrade
    from tests.conftest import services_of

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        '"os_compute_api:os-flavor-manage:create": "role:member"\n'
        '"volume_extension:qos_specs_manage:get_all": "role:member"\n'
        '"identity:list_projects": "role:member"\n'
        '"os_compute_api:os-hypervisors:list": "!"\n'
    )
    engine = make_engine(sqlite_url(tmp_path / "p.db"))
    upgrade(engine)
    services = services_of(engine, PolicyEngine(policy_file))
    with Client(build_app(services)) as c:
        member = token_for(c, "m-id", "m", PROJECT_A, PROJECT_A, ("member",))
        admin = token(c)
        flavor = {"flavor": {"name": "by-member", "ram": 64, "vcpus": 1, "disk": 0}}
        assert c.post("/compute/v2.1/flavors", headers=member, json=flavor).status_code == 200
        assert c.get(f"/volume/v3/{PROJECT_A}/qos-specs", headers=member).status_code == 200
        assert c.get("/identity/v3/projects", headers=member).status_code == 200
        # Not overridden: still the admin's.
        assert c.get("/identity/v3/users", headers=member).status_code == 403
        # Overridden to nobody: even the admin is refused.
        assert c.get("/compute/v2.1/os-hypervisors", headers=admin).status_code == 403
    engine.dispose()


def test_servers_and_volumes_are_read_by_readers_and_changed_by_members(world: World) -> None:
    """nova/policies/servers.py, volumes_attachments.py and cinder/policies/volumes.py,
    volume_actions.py: PROJECT_READER_OR_ADMIN reads, PROJECT_MEMBER_OR_ADMIN changes,
    another project's server or volume is 404, and every project's list is the admin's
    with all_tenants."""
    from tests.test_api import NOVA, make_flavor, make_server

    c = world.client
    member = world.as_("member")
    net = make_network(c, member, name="net-s", cidr="10.9.2.0/29")
    flavor = make_flavor(c, world.admin, name="f-matrix")
    server = make_server(c, member, [net], flavor=flavor, name="vm-a")["id"]
    body = {"server": {"name": "no", "flavorRef": flavor, "networks": [{"uuid": net}]}}
    refused = c.post("/compute/v2.1/servers", headers={**world.as_("reader"), **NOVA}, json=body)
    assert refused.status_code == 403, refused.text
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 404},
        lambda h: c.get(f"/compute/v2.1/servers/{server}", headers=h),
    )
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 404},
        lambda h: c.get(f"/compute/v2.1/servers/{server}/os-volume_attachments", headers=h),
    )

    def listed(h: dict[str, str], query: str = "") -> list[str]:
        r = c.get(f"/compute/v2.1/servers{query}", headers=h)
        assert r.status_code == 200, r.text
        return [s["id"] for s in r.json()["servers"]]

    assert server in listed(world.as_("reader"))
    assert server not in listed(world.admin)  # the admin's own project, as Nova lists
    assert server in listed(world.admin, "?all_tenants=1")
    assert c.get("/compute/v2.1/servers?all_tenants=1", headers=member).status_code == 403

    volumes = f"/volume/v3/{PROJECT_A}/volumes"
    made = c.post(volumes, headers=member, json={"volume": {"size": 1}})
    assert made.status_code == 202, made.text
    volume = made.json()["volume"]["id"]
    assert (
        c.post(volumes, headers=world.as_("reader"), json={"volume": {"size": 1}}).status_code
        == 403
    )
    _expect(
        world,
        {"admin": 200, "manager": 200, "member": 200, "reader": 200, "other": 404},
        lambda h: c.get(f"{volumes}/{volume}", headers=h),
    )
    extend = {"os-extend": {"new_size": 2}}
    assert (
        c.post(f"{volumes}/{volume}/action", headers=world.as_("reader"), json=extend).status_code
        == 403
    )
    assert (
        c.post(f"{volumes}/{volume}/action", headers=world.as_("other"), json=extend).status_code
        == 404
    )
    assert c.post(f"{volumes}/{volume}/action", headers=member, json=extend).status_code == 202
    attach = {"volumeAttachment": {"volumeId": volume}}
    path = f"/compute/v2.1/servers/{server}/os-volume_attachments"
    assert c.post(path, headers=world.as_("reader"), json=attach).status_code == 403
    attached = c.post(path, headers=member, json=attach)
    assert attached.status_code == 200, attached.text
    assert c.delete(f"{path}/{volume}", headers=world.as_("reader")).status_code == 403
    assert c.delete(f"{path}/{volume}", headers=member).status_code == 202
    assert c.delete(f"{volumes}/{volume}", headers=world.as_("reader")).status_code == 403
    assert c.delete(f"{volumes}/{volume}", headers=world.as_("other")).status_code == 404
    assert c.delete(f"{volumes}/{volume}", headers=member).status_code == 202
    assert (
        c.delete(f"/compute/v2.1/servers/{server}", headers=world.as_("reader")).status_code == 403
    )
    assert (
        c.delete(f"/compute/v2.1/servers/{server}", headers=world.as_("other")).status_code == 404
    )
    assert c.delete(f"/compute/v2.1/servers/{server}", headers=member).status_code == 204
