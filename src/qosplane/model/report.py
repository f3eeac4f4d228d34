"""What a host says back: per server the outcome of a pass, the drift it repaired, and the
last measurement of its limits. These travel agent -> API -> store -> `explain` as typed
values; JSON exists only on the wire and in the database (`to_json`/`from_json`), and its
shape is the one the native API has always sent, so other tools keep reading it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from qosplane.model.errors import InvalidInput
from qosplane.model.host_state import Outcome, RuleOutcome
from qosplane.model.plan import DesiredServer

E = TypeVar("E", bound=enum.Enum)


class ReportStatus(enum.Enum):
    """A server's state after a pass: every limit held, some cannot be held on this host,
    or the pass failed for it."""

    APPLIED = "applied"
    PARTIAL = "partial"
    FAILED = "failed"
    REMOVED = "removed"


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{key}", value, "a string")
    return value


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise InvalidInput(f"{where}.{key}", value, "an integer from 0 to 2147483647")
    return value


def _objects(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(f"{where}.{key}", value, "a list of objects")
    return value


def _choice(kind: type[E], data: Mapping[str, Any], key: str, where: str) -> E:
    try:
        return kind(data.get(key))
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidInput(f"{where}.{key}", data.get(key), f"one of {allowed}") from None


def outcome_from_json(data: Mapping[str, Any], where: str = "rule") -> RuleOutcome:
    return RuleOutcome(
        _text(data, "kind", where),
        _text(data, "device", where),
        _text(data, "direction", where),
        _choice(Outcome, data, "status", where),
        _text(data, "mechanism", where),
        bool(data.get("polices", False)),
        _text(data, "reason", where),
        _text(data, "held_as", where),
    )


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between what a host should hold and what it holds, named so an
    operator can read it ("tc class rate on tap5f1c..." not "state differs")."""

    instance: str
    device: str  # tap name, ifb name or "cpu"
    aspect: str  # "to-instance shaper", "from-instance redirect", "dscp mark", "cpu.shares"
    desired: str
    observed: str

    def to_json(self) -> dict[str, str]:
        return {
            "instance": self.instance,
            "device": self.device,
            "aspect": self.aspect,
            "desired": self.desired,
            "observed": self.observed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "drift") -> Drift:
        return cls(
            _text(data, "instance", where),
            _text(data, "device", where),
            _text(data, "aspect", where),
            _text(data, "desired", where),
            _text(data, "observed", where),
        )


@dataclass(frozen=True, slots=True)
class DriftRepair:
    """The last drift an agent repaired on a server, and when (UTC, ISO 8601)."""

    at: str
    drift: tuple[Drift, ...]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "drift": [d.to_json() for d in self.drift]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "last_drift") -> DriftRepair:
        return cls(
            _text(data, "at", where),
            tuple(Drift.from_json(d, f"{where}.drift") for d in _objects(data, "drift", where)),
        )


@dataclass(frozen=True, slots=True)
class ServerReport:
    """A pass's outcome for one server, for the plan revision it applied."""

    id: str
    plan_revision: int
    status: ReportStatus
    rules: tuple[RuleOutcome, ...]
    error: str = ""
    last_drift: DriftRepair | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "plan_revision": self.plan_revision,
            "status": self.status.value,
            "rules": [r.to_json() for r in self.rules],
            "error": self.error,
            "last_drift": self.last_drift.to_json() if self.last_drift else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "report") -> ServerReport:
        """Read and check a report as an agent sent it: a bad one is the sender's error
        (400 naming the field), never stored half-read."""
        last = data.get("last_drift")
        if last is not None and not isinstance(last, dict):
            raise InvalidInput(f"{where}.last_drift", last, "an object or null")
        return cls(
            _text(data, "id", where),
            _count(data, "plan_revision", where),
            _choice(ReportStatus, data, "status", where),
            tuple(outcome_from_json(r, f"{where}.rules") for r in _objects(data, "rules", where)),
            _text(data, "error", where),
            DriftRepair.from_json(last, f"{where}.last_drift") if last else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One measured limit against its configured value and the band it must fall in."""

    kind: str  # bandwidth, dscp, cpu_shares
    device: str
    direction: str
    configured: str  # as configured, with its unit
    expected: float
    measured: float
    unit: str
    tolerance: float  # relative; 0 for exact
    passed: bool
    method: str = ""
    # What the same path carried without the limit, in `unit`, when it was measured; a
    # path that cannot carry well above the limit proves nothing either way.
    capacity: float | None = None
    inconclusive: bool = False  # then `passed` is False too

    @property
    def outcome(self) -> str:
        return "inconclusive" if self.inconclusive else "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "device": self.device,
            "direction": self.direction,
            "configured": self.configured,
            "expected": self.expected,
            "measured": self.measured,
            "unit": self.unit,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "method": self.method,
            "capacity": self.capacity,
            "outcome": self.outcome,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "verdict") -> Verdict:
        numbers = []
        for key in ("expected", "measured", "tolerance"):
            value = data.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidInput(f"{where}.{key}", value, "a number")
            numbers.append(float(value))
        expected, measured, tolerance = numbers
        capacity = data.get("capacity")
        if capacity is not None and (
            not isinstance(capacity, int | float) or isinstance(capacity, bool) or capacity < 0
        ):
            raise InvalidInput(f"{where}.capacity", capacity, "a number of at least 0, or null")
        outcome = data.get("outcome", "pass" if data.get("passed") else "fail")
        if outcome not in ("pass", "fail", "inconclusive"):
            raise InvalidInput(f"{where}.outcome", outcome, "one of pass, fail, inconclusive")
        return cls(
            _text(data, "kind", where),
            _text(data, "device", where),
            _text(data, "direction", where),
            _text(data, "configured", where),
            expected,
            measured,
            _text(data, "unit", where),
            tolerance,
            outcome == "pass",
            _text(data, "method", where),
            None if capacity is None else float(capacity),
            outcome == "inconclusive",
        )


@dataclass(frozen=True, slots=True)
class Measurements:
    """The last `qosplane verify` of a server: when (UTC, ISO 8601) and its verdicts."""

    measured_at: str
    verdicts: tuple[Verdict, ...]

    def to_json(self) -> dict[str, Any]:
        return {"measured_at": self.measured_at, "verdicts": [v.to_json() for v in self.verdicts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "measurements") -> Measurements:
        return cls(
            _text(data, "measured_at", where),
            tuple(
                Verdict.from_json(v, f"{where}.verdicts") for v in _objects(data, "verdicts", where)
            ),
        )


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A server's state as the API knows it: Nova's status, its host, the plan revision,
    the agent's last report and the last measurement (each None until there is one)."""

    id: str
    status: str
    host: str
    plan_revision: int
    report: ServerReport | None
    measurements: Measurements | None

    def to_json(self) -> dict[str, Any]:
        return {
            "server": {"id": self.id, "status": self.status, "host": self.host},
            "plan_revision": self.plan_revision,
            "report": self.report.to_json() if self.report else {},
            "measurements": self.measurements.to_json() if self.measurements else {},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerStatus:
        server = data["server"]
        report, measured = data.get("report"), data.get("measurements")
        return cls(
            str(server["id"]),
            str(server.get("status", "")),
            str(server.get("host") or ""),
            int(data["plan_revision"]),
            ServerReport.from_json(report) if report else None,
            Measurements.from_json(measured) if measured else None,
        )


@dataclass(frozen=True, slots=True)
class PlacedServer:
    """A server's plan with what a host needs to run it, and where it runs now (the native
    API's `/servers/{id}/plan`)."""

    desired: DesiredServer
    status: str
    host: str

    def to_json(self) -> dict[str, Any]:
        d = self.desired
        return {
            "plan": d.plan.to_json() | {"revision": d.plan_revision},
            "server": {
                "id": d.id,
                "name": d.name,
                "status": self.status,
                "host": self.host,
                "ports": [p.to_json() for p in d.ports],
                "volumes": [v.to_json() for v in d.volumes],
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlacedServer:
        server = data["server"]
        plan = data["plan"]
        desired = DesiredServer.from_json(
            {**server, "plan": plan, "plan_revision": int(plan["revision"])}
        )
        return cls(desired, str(server.get("status", "")), str(server.get("host") or ""))
