"""What a host says back travels typed: a report, a measurement and a server's status survive
JSON both ways unchanged, and a malformed one is refused naming its field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qosplane.model.errors import InvalidInput
from qosplane.model.host_state import Outcome, RuleOutcome
from qosplane.model.plan import AttachedVolume, DesiredServer
from qosplane.model.report import (
    Drift,
    DriftRepair,
    Measurements,
    PlacedServer,
    ReportStatus,
    ServerReport,
    ServerStatus,
    Verdict,
)
from tests.hostkit import server_of
from tests.test_host_program import hybrid_plan

TEXT = st.text(max_size=12)
RULES = st.builds(
    RuleOutcome, TEXT, TEXT, TEXT, st.sampled_from(Outcome), TEXT, st.booleans(), TEXT, TEXT
)
DRIFT = st.builds(Drift, TEXT, TEXT, TEXT, TEXT, TEXT)
REPORTS = st.builds(
    ServerReport,
    TEXT,
    st.integers(0, 2**31 - 1),
    st.sampled_from(ReportStatus),
    st.lists(RULES, max_size=3).map(tuple),
    TEXT,
    st.none() | st.builds(DriftRepair, TEXT, st.lists(DRIFT, max_size=3).map(tuple)),
)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
VERDICTS = st.builds(
    Verdict, TEXT, TEXT, TEXT, TEXT, FLOATS, FLOATS, TEXT, FLOATS, st.booleans(), TEXT
)


def _wire(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data))


@given(REPORTS)
def test_a_report_round_trips(report: ServerReport) -> None:
    assert ServerReport.from_json(_wire(report.to_json())) == report


@given(st.lists(VERDICTS, max_size=4), REPORTS)
def test_a_status_round_trips(verdicts: list[Verdict], report: ServerReport) -> None:
    status = ServerStatus("s1", "ACTIVE", "h1", 3, report, Measurements("t", tuple(verdicts)))
    assert ServerStatus.from_json(_wire(status.to_json())) == status
    empty = ServerStatus("s1", "BUILD", "", 1, None, None)
    assert ServerStatus.from_json(_wire(empty.to_json())) == empty


def test_a_placed_server_round_trips_and_keeps_the_plan_json() -> None:
    server = server_of(hybrid_plan("cinder-per-gb.yaml"), "server-03")
    desired = DesiredServer(
        server.id, "vm", 7, server.plan, server.ports, (AttachedVolume("v1", "vdb", 2),)
    )
    placed = PlacedServer(desired, "ACTIVE", "h1")
    wire = _wire(placed.to_json())
    assert PlacedServer.from_json(wire) == placed
    # `qosplane plan --json` prints this: the compiler's JSON plus the stored revision.
    assert wire["plan"] == _wire(server.plan.to_json()) | {"revision": 7}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "exploded"}, "report.status"),
        ({"plan_revision": -1}, "report.plan_revision"),
        ({"plan_revision": True}, "report.plan_revision"),
        ({"plan_revision": "3"}, "report.plan_revision"),
        ({"id": 5}, "report.id"),
        ({"rules": {"kind": "x"}}, "report.rules"),
        ({"rules": [{"kind": "x", "status": "maybe"}]}, "report.rules.status"),
        ({"rules": [{"kind": 1, "status": "applied"}]}, "report.rules.kind"),
        ({"rules": [{"kind": "x", "status": "applied", "held_as": 3}]}, "report.rules.held_as"),
        ({"last_drift": "yesterday"}, "report.last_drift"),
        ({"last_drift": {"at": "t", "drift": [{"device": 3}]}}, "report.last_drift.drift.device"),
    ],
)
def test_a_malformed_report_names_its_field(change: dict[str, Any], field: str) -> None:
    good = ServerReport("s1", 1, ReportStatus.APPLIED, ()).to_json()
    with pytest.raises(InvalidInput) as caught:
        ServerReport.from_json(good | change)
    assert field in str(caught.value)


def test_a_verdict_needs_numbers() -> None:
    good = Verdict("bandwidth", "tap", "ingress", "1 bit/s", 1.0, 1.0, "bit/s", 0.05, True)
    with pytest.raises(InvalidInput, match=r"verdict\.measured"):
        Verdict.from_json(good.to_json() | {"measured": "fast"})
    with pytest.raises(InvalidInput, match=r"verdict\.expected"):
        Verdict.from_json(good.to_json() | {"expected": True})
