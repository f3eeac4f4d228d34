"""Every example's full plan, pinned as a golden JSON file.

A change in any artifact shows up as a diff here. After an intended change, regenerate with
    QOSPLANE_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_golden_plans.py
and review the diff of tests/golden/plans/ before committing.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import EXAMPLES, GOLDEN, load_case, plan_of

CASES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_plan_matches_golden(name: str) -> None:
    plan = plan_of(load_case(name)).to_json()
    golden = GOLDEN / "plans" / (name.removesuffix(".yaml") + ".json")
    text = json.dumps(plan, indent=2, sort_keys=True) + "\n"
    if os.environ.get("QOSPLANE_REGEN_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; regenerate with QOSPLANE_REGEN_GOLDEN=1"
    assert json.loads(golden.read_text()) == plan


def test_every_example_has_a_golden_file() -> None:
    goldens = {p.name.removesuffix(".json") for p in (GOLDEN / "plans").glob("*.json")}
    assert goldens == {name.removesuffix(".yaml") for name in CASES}
