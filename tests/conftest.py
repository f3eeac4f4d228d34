"""Shared helpers: load example cases and compile them."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import Engine
from starlette.testclient import TestClient

from qosplane.api.app import build_app
from qosplane.api.auth import TokenSigner
from qosplane.api.common import AdminAccount, Services
from qosplane.api.policy import PolicyEngine
from qosplane.compiler.upstream.plan import HostPlan, compile_plan
from qosplane.openstack.case import case_from_mapping
from qosplane.store.database import Database, make_engine, sqlite_url, upgrade
from qosplane.store.tables import ProjectRow, UserRow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"


def load_case(name: str) -> Any:
    return yaml.safe_load((EXAMPLES / name).read_text())


def plan_of(body: Any) -> HostPlan:
    instance, facts = case_from_mapping(body)
    return compile_plan(instance, facts)


@pytest.fixture
def resquota_plan() -> HostPlan:
    return plan_of(load_case("m1-resquota.yaml"))


@pytest.fixture
def normal_plan() -> HostPlan:
    return plan_of(load_case("m1-normal.yaml"))


@pytest.fixture
def neutron_plan() -> HostPlan:
    return plan_of(load_case("vm-neutron-qos.yaml"))


PG_URL = os.environ.get("QOSPLANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, created on the server of
    QOSPLANE_TEST_PG_URL and dropped at the end, so concurrent runs never share tables.

    Skips with the reason when the server is unreachable, except under CI=true, where it fails.
    """
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {PG_URL} is not reachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the PostgreSQL variants)")
        pytest.skip(reason)
    name = f"qosplane_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Bugs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_bug_answered_as_500(request: pytest.FixtureRequest) -> Iterator[None]:
    """The API answers a bug with a 500 and keeps the connection (api/app.py), so the
    TestClient no longer raises it: a test that did not check the status would pass on a
    bug. Any bug the in-process API logs fails the test, unless it is marked
    answers_a_bug."""
    bugs = _Bugs()
    logger = logging.getLogger("qosplane.api")
    logger.addHandler(bugs)
    try:
        yield
    finally:
        logger.removeHandler(bugs)
    if bugs.seen and request.node.get_closest_marker("answers_a_bug") is None:
        pytest.fail("the API answered a bug with a 500: " + "; ".join(bugs.seen))


def _pg_url_of(database: str) -> str:
    return PG_URL.rsplit("/", 1)[0] + "/" + database


# Each API test starts from an empty store at the schema's head. Migrating is done once per
# run and copied per test: a copy takes about 2 ms (SQLite) or 0.05 s (PostgreSQL), a
# migration 0.35 s and a PostgreSQL downgrade and upgrade 0.7 s, which over the 400 tests
# that use a store came to minutes of CI. The migrations themselves are tested in
# tests/test_store.py.
@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "head.db"
    engine = make_engine(sqlite_url(path))
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def pg_at_head(pg_url: str) -> Iterator[str]:
    """A database of this run migrated to head: the template each test's database copies."""
    template = pg_url.rsplit("/", 1)[1] + "_head"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{template}"')
    try:
        engine = make_engine(_pg_url_of(template))
        upgrade(engine)
        engine.dispose()  # a template may have no connections when it is copied
        yield template
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@contextmanager
def store_at_head(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[str]:
    """The URL of an empty store at the schema's head, this test's alone, on `backend`
    (sqlite or postgresql); a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path / "api.db"
        shutil.copyfile(request.getfixturevalue("sqlite_at_head"), path)
        yield sqlite_url(path)
        return
    template = request.getfixturevalue("pg_at_head")
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        # PostgreSQL 15 copies a template through the WAL by default (fast for a small
        # one); older servers copy its files, which is slower but the same.
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url_of(name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SECRET = b"k" * 32
ADMIN = AdminAccount("admin-user-id", "s3cret", "admin-project-id")
# The tests' APIs hash passwords with 1,000 PBKDF2 rounds instead of 200,000: each login
# and each user made costs 0.12 s at the default, and the suite makes thousands. What the
# setting does is tested in tests/test_keystone_lifecycle.py.
FAST_HASH_ROUNDS = 1_000


def services_of(engine: Engine, policy: PolicyEngine | None = None) -> Services:
    """The API's services over `engine`, as the tests build them."""
    return Services(
        Database(engine),
        TokenSigner(SECRET),
        ADMIN,
        policy=policy or PolicyEngine(),
        password_hash_rounds=FAST_HASH_ROUNDS,
    )


def token_for(
    client: TestClient,
    user_id: str,
    user_name: str,
    project_id: str,
    project_name: str,
    roles: tuple[str, ...],
) -> dict[str, str]:
    """Headers with a token for that user on that project holding `roles`, the user, the
    project and the grants made in the store first: every request holds a token against
    the store, so a token for a user the store does not know is refused (401)."""
    from datetime import timedelta

    from qosplane.api.auth import Context, utcnow

    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.transaction() as s:
        repo = services.identity(s)
        if s.get(ProjectRow, project_id) is None:
            repo.create_project(project_name, project_id=project_id)
        if s.get(UserRow, user_id) is None:
            repo.create_user(user_name, "pw", user_id=user_id)
        for role in roles:
            repo.grant(user_id, project_id, role)
    ctx = Context(
        user_id, user_name, project_id, project_name, roles, utcnow() + timedelta(hours=1)
    )
    return {"X-Auth-Token": services.signer.issue(ctx)}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The API on SQLite and on PostgreSQL (see tests/test_store.py for the skip rule)."""
    with store_at_head(request, tmp_path, request.param) as url:
        engine = make_engine(url)
        app = build_app(services_of(engine))
        try:
            with TestClient(app, raise_server_exceptions=True) as c:
                yield c
        finally:
            engine.dispose()


def require_root_and(*tools: str) -> None:
    """Skip, saying why, unless running as root with `tools` installed; under CI=true a
    missing requirement fails instead (.ci/run installs them)."""
    import shutil

    missing = [t for t in tools if shutil.which(t) is None]
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root (network namespaces, tc, cgroups)"
    elif missing:
        reason = f"needs {', '.join(missing)} (apt: see scripts/host-packages)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the host tests)")
        pytest.skip(reason)


def require_python_module(module: str, how: str) -> None:
    """Skip (fail under CI=true), saying why, unless `module` imports."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        reason = f"needs the Python module {module} ({how})"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the host tests)")
        pytest.skip(reason)
