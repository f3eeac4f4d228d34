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
