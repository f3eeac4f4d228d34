"""The agent's loop: register, then watch the host's desired state and reconcile.

The watch doubles as the drift timer: it returns after `drift_check_s` without a change,
and the pass that follows observes the host again, so a change made behind the agent's
back is repaired within that interval plus one pass. Reports go to the API when the
revision, a server's outcome or the host itself changed, not on every quiet pass.

The API can be away (restarting, partitioned) for longer than a pass. The agent keeps the
last desired state it got in `cache`, on the host, and goes on repairing drift from it
while the API cannot be reached, also after its own restart; what it did is reported with
the first pass after the API answers again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from qosplane.agent.reconcile import PassResult, Reconciler, repaired_drift, server_reports
from qosplane.model.errors import NotFound, QosplaneError, Unreachable
from qosplane.model.host_facts import HostFacts
from qosplane.model.plan import DesiredHost, DesiredServer
from qosplane.model.report import DriftRepair, ReportStatus, ServerReport

LOG = logging.getLogger("qosplane.agent")
HEARTBEAT_S = 20.0


class AgentApi(Protocol):
    def register_host(self, name: str, facts: HostFacts) -> None: ...

    def watch(self, host: str, since: int, timeout_s: float) -> DesiredHost: ...

    def report(self, host: str, revision: int, servers: Sequence[ServerReport]) -> None: ...

    def heartbeat(self, host: str) -> None: ...


@dataclass
class Agent:
    api: AgentApi
    host: str
    reconciler: Reconciler
    facts: HostFacts = field(default_factory=HostFacts)
    drift_check_s: float = 1.0
    revision: int = -1
    servers: tuple[DesiredServer, ...] = ()
    converged: dict[str, int] = field(default_factory=dict)  # server id -> plan revision
    last_reports: list[ServerReport] = field(default_factory=list)
    drift_log: dict[str, DriftRepair] = field(default_factory=dict)  # server id -> last repair
    on_pass: Callable[[PassResult], None] | None = None  # tests and benchmarks listen here
    cache: Path | None = None  # the last desired state, for passes while the API is away
    _last_contact: float = 0.0

    def register(self) -> None:
        self.api.register_host(self.host, self.facts)
        self._last_contact = time.monotonic()

    def step(self, wait_s: float) -> PassResult:
        """One watch (up to `wait_s`), one reconcile pass, one report if anything changed."""
        state = self.api.watch(self.host, self.revision, wait_s)
        changed = state.changed
        if changed:
            self.revision = state.revision
            self.servers = state.servers
            self._remember(state)
        targets, result = self.reconciler.converge(self.servers)
        if self.on_pass is not None:  # enforced (and read back) on the host from here
            self.on_pass(result)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The last repair stays in the report (for explain) until the next one: a quiet
        # pass does not erase it, and an unrepairable drift is not re-sent every pass.
        for server_id, drift in repaired_drift(targets, result, self.converged).items():
            self.drift_log[server_id] = DriftRepair(stamp, drift)
        reports = [
            replace(r, last_drift=self.drift_log.get(r.id)) for r in server_reports(targets, result)
        ]
        if changed or result.removed or reports != self.last_reports:
            self.api.report(self.host, self.revision, reports)
            self._last_contact = time.monotonic()
        elif time.monotonic() - self._last_contact > HEARTBEAT_S:
            self.api.heartbeat(self.host)
            self._last_contact = time.monotonic()
        for report in reports:
            if report.status is not ReportStatus.FAILED:
                self.converged[report.id] = report.plan_revision
        self.last_reports = reports
        if result.drift_before and not changed:
            repaired = [d for d in result.drift_before if d not in result.drift_after]
            if repaired:
                LOG.warning("repaired drift: %s", [d.to_json() for d in repaired])
        if result.drift_after:
            LOG.warning("drift not repaired: %s", [d.to_json() for d in result.drift_after])
        for problem in result.host_errors:
            LOG.warning("cleanup failed, retried next pass: %s", problem)
        return result

    def _remember(self, state: DesiredHost) -> None:
        """Keep the desired state on the host (written whole, then renamed into place, so a
        crash leaves the old copy or the new one, never half of one)."""
        if self.cache is None:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        partial = self.cache.with_name(self.cache.name + ".partial")
        partial.write_text(json.dumps(state.to_json()))
        partial.chmod(0o600)
        partial.replace(self.cache)

    def recall(self) -> bool:
        """Start from the kept desired state, if there is one: its revision too, so the
        first watch answers at once only if the API moved on meanwhile."""
        if self.cache is None or not self.cache.exists() or self.revision >= 0:
            return False
        try:
            state = DesiredHost.from_json(json.loads(self.cache.read_text()))
        except (ValueError, KeyError, TypeError) as exc:  # a damaged copy: start from the API
            LOG.warning("ignoring the kept desired state %s: %s", self.cache, exc)
            return False
        self.revision, self.servers = state.revision, state.servers
        return True

    def step_offline(self) -> PassResult:
        """A pass from the last desired state while the API cannot be reached: drift is
        repaired, nothing is reported (the next reachable pass reports, since its reports
        differ from the last ones sent)."""
        targets, result = self.reconciler.converge(self.servers)
        if self.on_pass is not None:
            self.on_pass(result)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for server_id, drift in repaired_drift(targets, result, self.converged).items():
            self.drift_log[server_id] = DriftRepair(stamp, drift)  # reported once back
        if result.drift_before:
            LOG.warning(
                "API unreachable: repaired drift from the kept desired state: %s",
                [d.to_json() for d in result.drift_before if d not in result.drift_after],
            )
        self.last_reports = []  # what the API holds is older than this pass
        return result

    def _offline_pass(self) -> None:
        if self.revision < 0:  # never got a desired state: nothing to keep the host at
            return
        try:
            self.step_offline()
        except Exception:  # as in run(): a bug must not stop the agent for good
            LOG.exception("offline pass failed unexpectedly, retrying")

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: register, then step. An unreachable API or a failed pass is
        logged and retried after a pause; meanwhile the host is kept as the last desired
        state says (`step_offline`)."""
        self.recall()
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    self.register()
                    registered = True
                self.step(self.drift_check_s)
            except NotFound as exc:  # the API forgot this host (a new database): register
                LOG.warning("host unknown to the API, registering again: %s", exc)
                registered = False
                stop.wait(self.drift_check_s)
            except Unreachable as exc:  # the API is starting, restarting or gone for now
                if stop.is_set():  # it went away because we are both stopping
                    break
                LOG.warning("API unreachable, trying again in %.1f s: %s", self.drift_check_s, exc)
                self._offline_pass()
                stop.wait(self.drift_check_s)
            except QosplaneError as exc:
                LOG.warning("agent pass failed, retrying: %s", exc)
                stop.wait(self.drift_check_s)
            except Exception:
                # A bug must not stop the host's agent for good: log it whole and go on
                # with the next pass, which starts again from observation.
                LOG.exception("agent pass failed unexpectedly, retrying")
                stop.wait(self.drift_check_s)
