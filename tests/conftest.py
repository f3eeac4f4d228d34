"""Shared helpers: load example cases and compile them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from qosplane.compiler.plan import HostPlan, compile_plan
from qosplane.openstack.case import case_from_mapping

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
