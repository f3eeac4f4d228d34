"""The store on SQLite and on PostgreSQL: the same tests, both databases.

PostgreSQL: a database of the run's own on the server of QOSPLANE_TEST_PG_URL (default: the
development/CI server at 127.0.0.1:5432, trust auth), see the `pg_url` fixture in conftest.py.
Without a reachable server the PostgreSQL variants skip and say why, except under CI=true,
where they fail: CI starts the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from qosplane.model.errors import Conflict, InvalidInput, NotFound, RevisionMismatch
from qosplane.model.network_qos import QosPolicy
from qosplane.openstack.neutron import rule_from_json
from qosplane.openstack.nova import make_flavor
from qosplane.store.database import Database, downgrade, make_engine, sqlite_url, upgrade
from qosplane.store.flavors import FlavorRepository
from qosplane.store.qos_policies import QosPolicyRepository


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path / "qosplane.db"))
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        downgrade(engine)
    upgrade(engine)
    yield Database(engine)
    if request.param == "postgresql":
        downgrade(engine)
    engine.dispose()


def test_migrations_create_every_table_and_are_idempotent(db: Database) -> None:
    upgrade(db.engine)  # a second start keeps the schema (and the data)
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "flavors",
        "flavor_extra_specs",
        "qos_policies",
        "qos_policy_tags",
        "qos_rules",
        "alembic_version",
    } <= tables


def test_flavor_round_trip_with_seed_specs(db: Database) -> None:
    specs = {"quota:cpu_shares": "512", "quota:vif_inbound_average": "32768"}
    with db.transaction() as s:
        created = FlavorRepository(s).create(make_flavor("m1.resquota", 1, 1024, 20, specs))
    with db.transaction() as s:
        got = FlavorRepository(s).find_by_name("m1.resquota")
    assert got == created
    assert got.qos.cpu.shares == 512
    assert got.qos.vif_inbound is not None
    assert got.qos.vif_inbound.average_bytes_per_s == 32_768_000


def test_duplicate_flavor_name_is_a_conflict_and_keeps_the_first(db: Database) -> None:
    with db.transaction() as s:
        FlavorRepository(s).create(make_flavor("m1", 1, 512, 1, {}))
    with pytest.raises(Conflict, match="already exists"), db.transaction() as s:
        FlavorRepository(s).create(make_flavor("m1", 2, 512, 1, {}))
    with db.transaction() as s:
        assert [f.vcpus for f in FlavorRepository(s).list()] == [1]


def test_refused_extra_spec_writes_nothing(db: Database) -> None:
    with db.transaction() as s:
        fid = FlavorRepository(s).create(make_flavor("m1", 1, 512, 1, {})).id
    with pytest.raises(InvalidInput, match="quota:cpu_sharez"), db.transaction() as s:
        FlavorRepository(s).set_extra_specs(
            fid, {"quota:cpu_shares": "512", "quota:cpu_sharez": "1"}
        )
    # Two writes in one transaction: the second is refused, so the first is rolled back too.
    with pytest.raises(InvalidInput, match="not both"), db.transaction() as s:  # noqa: PT012
        repo = FlavorRepository(s)
        repo.set_extra_specs(fid, {"quota:disk_read_bytes_sec": "1"})
        repo.set_extra_specs(fid, {"quota:disk_total_bytes_sec": "1"})
    with db.transaction() as s:
        assert FlavorRepository(s).get(fid).extra_specs == {}


def test_unset_extra_spec_and_unknown_key(db: Database) -> None:
    with db.transaction() as s:
        repo = FlavorRepository(s)
        fid = repo.create(make_flavor("m1", 1, 512, 1, {"quota:cpu_shares": "512"})).id
        assert repo.unset_extra_specs(fid, ["quota:cpu_shares"]).extra_specs == {}
        with pytest.raises(NotFound, match="quota:cpu_shares"):
            repo.unset_extra_specs(fid, ["quota:cpu_shares"])


def _policy(db: Database, project: str = "p1", **kw: object) -> QosPolicy:
    with db.transaction() as s:
        return QosPolicyRepository(s).create(QosPolicy(name="bw-limiter", project_id=project, **kw))  # type: ignore[arg-type]


def test_policy_rules_round_trip_in_canonical_units(db: Database) -> None:
    policy = _policy(db, tags=("gold",))
    rule = rule_from_json("bandwidth_limit", {"max_kbps": 3000, "max_burst_kbps": 300})
    with db.transaction() as s:
        stored = QosPolicyRepository(s).add_rule(policy.id, rule)
    with db.transaction() as s:
        got = QosPolicyRepository(s).get(policy.id)
    assert got.rules == (stored,)
    assert got.tags == ("gold",)
    assert stored.max_rate_bits_per_s == 3_000_000  # type: ignore[union-attr]
    assert stored.max_burst_bits == 300_000  # type: ignore[union-attr]


def test_duplicate_rule_is_refused_and_revision_unchanged(db: Database) -> None:
    policy = _policy(db)
    egress = rule_from_json("bandwidth_limit", {"max_kbps": 3000})
    with db.transaction() as s:
        QosPolicyRepository(s).add_rule(policy.id, egress)
    with pytest.raises(Conflict, match="already exists"), db.transaction() as s:
        QosPolicyRepository(s).add_rule(
            policy.id, rule_from_json("bandwidth_limit", {"max_kbps": 1})
        )
    with db.transaction() as s:
        repo = QosPolicyRepository(s)
        assert repo.revision(policy.id) == 1
        assert len(repo.get(policy.id).rules) == 1


def test_if_match_revision(db: Database) -> None:
    policy = _policy(db)
    dscp = rule_from_json("dscp_marking", {"dscp_mark": 26})
    with (
        pytest.raises(RevisionMismatch, match="revision_number is 0, the request expected 5"),
        db.transaction() as s,
    ):
        QosPolicyRepository(s).add_rule(policy.id, dscp, if_revision=5)
    with db.transaction() as s:
        QosPolicyRepository(s).add_rule(policy.id, dscp, if_revision=0)
        assert QosPolicyRepository(s).revision(policy.id) == 1


def test_one_default_policy_per_project(db: Database) -> None:
    _policy(db, is_default=True)
    _policy(db, project="p2", is_default=True)
    with pytest.raises(Conflict, match="one default policy per project"):
        _policy(db, is_default=True)


def test_projects_see_their_own_and_shared_policies(db: Database) -> None:
    own = _policy(db, "p1")
    shared = _policy(db, "p2", shared=True)
    _policy(db, "p3")
    with db.transaction() as s:
        repo = QosPolicyRepository(s)
        assert {p.id for p in repo.list("p1")} == {own.id, shared.id}
        assert len(repo.list()) == 3


def test_deleting_a_policy_removes_its_rules(db: Database) -> None:
    policy = _policy(db)
    with db.transaction() as s:
        QosPolicyRepository(s).add_rule(
            policy.id, rule_from_json("dscp_marking", {"dscp_mark": 26})
        )
    with db.transaction() as s:
        QosPolicyRepository(s).delete(policy.id)
    with db.engine.connect() as conn:
        assert conn.execute(text("select count(*) from qos_rules")).scalar() == 0
    with pytest.raises(NotFound), db.transaction() as s:
        QosPolicyRepository(s).get(policy.id)


def test_projects_and_users_of_one_domain_move_into_the_default_domain(db: Database) -> None:
    """Migration 0015 on a store that has data: the projects, users and role grants kept so
    far land in the default domain, under it, and the user still logs in with its role.
    (On SQLite a batch rebuild of users or projects once dropped every grant by cascade.)"""
    from qosplane.store.identity import IdentityRepository, hash_password

    downgrade(db.engine, "0014")
    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO projects (id, name, description, enabled, extra_json, tags_json) "
                "VALUES ('p1', 'ops', '', true, '{}', '[]')"
            )
        )
        c.execute(
            text(
                "INSERT INTO users (id, name, password_hash, enabled, description, extra_json) "
                "VALUES ('u1', 'alice', :pw, true, '', '{}')"
            ),
            {"pw": hash_password("pw")},
        )
        c.execute(
            text(
                "INSERT INTO role_assignments (user_id, project_id, role) VALUES ('u1', 'p1', 'member')"
            )
        )
    upgrade(db.engine)
    with db.transaction() as s:
        repo = IdentityRepository(s)
        project = repo.project("p1")
        assert (project.domain_id, project.parent_id, project.is_domain) == (
            "default",
            "default",
            False,
        )
        assert repo.domain("default").name == "Default"
        assert [a.role for a in repo.assignments(user_id="u1")] == ["member"]
        user, scoped, roles = repo.authenticate(None, "alice", "pw", "ops", None)
        assert (user.id, scoped is not None and scoped.id, "member" in roles) == ("u1", "p1", True)
        # Names are now unique per domain: "ops" again in another domain is fine.
        other = repo.create_domain("other")
        assert repo.create_project("ops", domain_id=other.id).parent_id == other.id
        with pytest.raises(Conflict):
            repo.create_project("ops")
    # And back: the grants of the default domain survive the downgrade too.
    downgrade(db.engine, "0014")
    with db.engine.begin() as c:
        kept = c.execute(text("SELECT user_id, project_id, role FROM role_assignments")).all()
    assert ("u1", "p1", "member") in [tuple(r) for r in kept]
