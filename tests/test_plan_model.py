"""The typed plan: what the compiler makes survives JSON both ways, unchanged, so the store,
the watch and explain can pass `HostPlan` values and keep the JSON contract of design.md §1."""

from __future__ import annotations

import json
import random

import pytest
from bench.compile import random_case
from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.model.plan import (
    CpuQuota,
    CpuWeight,
    DiskBytes,
    DiskIops,
    DscpMark,
    HostPlan,
    Limit,
    MinPacketRate,
    MinRate,
    PacketRate,
    Rate,
    limit_from_json,
)
from tests.conftest import EXAMPLES, load_case, plan_of

CASES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_each_example_plan_round_trips(name: str) -> None:
    plan = plan_of(load_case(name))
    wire = json.loads(json.dumps(plan.to_json()))
    back = HostPlan.from_json(wire)
    assert back == plan
    assert back.to_json() == plan.to_json()


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=500))
def test_any_compiled_plan_round_trips(seed: int, number: int) -> None:
    plan = plan_of(random_case(random.Random(seed), number))
    back = HostPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert back == plan


@pytest.mark.parametrize(
    "limit",
    [
        Rate(10_000_000),
        Rate(10_000_000, 20_000_000, 65536),
        MinRate(1_000_000),
        MinRate(1_000_000, 3_000_000),
        PacketRate(10_000, 1_000),
        MinPacketRate(5_000),
        DscpMark(26, 0x68),
        DiskBytes(1_000_000),
        DiskIops(100, 200),
        CpuWeight(512),
        CpuQuota(50_000, 100_000, 500),
    ],
)
def test_each_limit_is_its_json_and_comes_back_as_its_type(limit: Limit) -> None:
    wire = limit.to_json()
    assert all(value is not None for value in wire.values())
    back = limit_from_json(wire)
    assert type(back) is type(limit)
    assert back == limit
    assert back == wire  # a limit equals the mapping of its set fields
    assert hash(back) == hash(limit)


def test_a_rate_names_its_units_and_leaves_unset_fields_out() -> None:
    rate = Rate(3_000_000, burst_bytes=38_400)
    assert rate.to_json() == {"rate_bits_per_s": 3_000_000, "burst_bytes": 38_400}
    assert "ceil_bits_per_s" not in rate
    with pytest.raises(KeyError):
        rate["ceil_bits_per_s"]
    assert rate.strictness() == 3_000_000


def test_an_unknown_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="not a limit"):
        limit_from_json({"furlongs_per_fortnight": 1})
