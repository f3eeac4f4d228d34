"""Shared helpers: load example cases and compile them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from starlette.testclient import TestClient

from qosplane.api.app import build_app
from qosplane.api.auth import TokenSigner
from qosplane.api.common import AdminAccount, Services
from qosplane.compiler.upstream.plan import HostPlan, compile_plan
from qosplane.openstack.case import case_from_mapping
from qosplane.store.database import Database, downgrade, make_engine, sqlite_url, upgrade
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


SECRET = b"k" * 32
ADMIN = AdminAccount("admin-user-id", "s3cret", "admin-project-id")


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
    from qosplane.store.identity import IdentityRepository

    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.transaction() as s:
        repo = IdentityRepository(s)
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
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path / "api.db"))
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        downgrade(engine)
    upgrade(engine)
    app = build_app(Services(Database(engine), TokenSigner(SECRET), ADMIN))
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c
    if request.param == "postgresql":
        downgrade(engine)
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
