"""The agent's loop: register, then watch the host's desired state and reconcile.

The watch doubles as the drift timer: it returns after `drift_check_s` without a change,
and the pass that follows observes the host again, so a change made behind the agent's
back is repaired within that interval plus one pass. Reports go to the API when the
revision, a server's outcome or the host itself changed, not on every quiet pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from qosplane.agent.reconcile import PassResult, Reconciler, server_reports
from qosplane.model.errors import QosplaneError

LOG = logging.getLogger("qosplane.agent")
HEARTBEAT_S = 20.0


class AgentApi(Protocol):
    def register_host(self, name: str, facts: dict[str, Any]) -> dict[str, Any]: ...

    def watch(self, host: str, since: int, timeout_s: float) -> dict[str, Any]: ...

    def report(self, host: str, revision: int, servers: list[dict[str, Any]]) -> None: ...

    def heartbeat(self, host: str) -> None: ...


@dataclass
class Agent:
    api: AgentApi
    host: str
    reconciler: Reconciler
    facts: dict[str, Any] = field(default_factory=dict)
    drift_check_s: float = 1.0
    revision: int = -1
    servers: list[dict[str, Any]] = field(default_factory=list)
    converged: dict[str, int] = field(default_factory=dict)  # server id -> plan revision
    last_reports: list[dict[str, Any]] = field(default_factory=list)
    on_pass: Callable[[PassResult], None] | None = None  # tests and benchmarks listen here
    _last_contact: float = 0.0

    def register(self) -> None:
        self.api.register_host(self.host, self.facts)
        self._last_contact = time.monotonic()

    def step(self, wait_s: float) -> PassResult:
        """One watch (up to `wait_s`), one reconcile pass, one report if anything changed."""
        state = self.api.watch(self.host, self.revision, wait_s)
        changed = bool(state.get("changed"))
        if changed:
            self.revision = int(state["revision"])
            self.servers = list(state["servers"])
        targets, result = self.reconciler.converge(self.servers)
        if self.on_pass is not None:  # enforced (and read back) on the host from here
            self.on_pass(result)
        reports = server_reports(targets, result, self.converged)
        if changed or result.changed or reports != self.last_reports:
            self.api.report(self.host, self.revision, reports)
            self._last_contact = time.monotonic()
        elif time.monotonic() - self._last_contact > HEARTBEAT_S:
            self.api.heartbeat(self.host)
            self._last_contact = time.monotonic()
        for report in reports:
            if report["status"] != "failed":
                self.converged[report["id"]] = report["plan_revision"]
        self.last_reports = reports
        if result.drift_before and not changed:
            LOG.warning("repaired drift: %s", [d.to_json() for d in result.drift_before])
        return result

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: register, then step. An unreachable API or a failed pass is
        logged and retried after a pause; the host keeps what it last converged to."""
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    self.register()
                    registered = True
                self.step(self.drift_check_s)
            except (QosplaneError, OSError) as exc:
                LOG.warning("agent pass failed, retrying: %s", exc)
                stop.wait(self.drift_check_s)
