"""An agent that works without the API (issue 11): it keeps the last desired state on the
host, repairs drift from it while the API is away, also after its own restart, and reports
what it did once the API answers again. On the in-memory host drivers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qosplane.agent.loop import Agent
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.model.errors import Unreachable
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import Capabilities, CpuQos
from qosplane.model.plan import DesiredHost, DesiredServer
from qosplane.model.report import ServerReport
from tests.hostkit import fake_drivers, server_of
from tests.test_host_program import hybrid_plan

CAPS = Capabilities(htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True)
INSTANCE = "instance-00000041"


@dataclass
class FlakyApi:
    """The API as an agent sees it, which can be switched off (refused connections)."""

    servers: tuple[DesiredServer, ...]
    revision: int = 7
    down: bool = False
    reports: list[list[ServerReport]] = field(default_factory=list)

    def _reachable(self) -> None:
        if self.down:
            raise Unreachable("GET http://127.0.0.1:1/: connection refused")

    def register_host(self, name: str, facts: HostFacts) -> None:
        self._reachable()

    def watch(self, host: str, since: int, timeout_s: float) -> DesiredHost:
        self._reachable()
        if since == self.revision:
            time.sleep(min(timeout_s, 0.05))
            return DesiredHost(self.revision, False)
        return DesiredHost(self.revision, True, self.servers)

    def report(self, host: str, revision: int, servers: Sequence[ServerReport]) -> None:
        self._reachable()
        self.reports.append(list(servers))

    def heartbeat(self, host: str) -> None:
        self._reachable()


def _agent(api: FlakyApi, host: HostDrivers, cache: Path) -> Agent:
    return Agent(api, "h1", Reconciler(host, CAPS), drift_check_s=0.05, cache=cache)


def _until(check: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.02)


def _running(agent: Agent) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def _shares(host: HostDrivers) -> int | None:
    seen = host.cgroups.observe(INSTANCE)
    return seen.shares if seen is not None else None


def test_drift_during_an_outage_is_repaired_and_reported_when_the_api_is_back(
    tmp_path: Path,
) -> None:
    api = FlakyApi((server_of(hybrid_plan("m1-resquota.yaml"), "server-01"),))
    host = fake_drivers()
    agent = _agent(api, host, tmp_path / "desired.json")
    stop, thread = _running(agent)
    try:
        _until(lambda: _shares(host) == 512 and bool(api.reports), "the first converge")
        assert json.loads((tmp_path / "desired.json").read_text())["revision"] == 7
        api.down = True
        sent = len(api.reports)
        host.cgroups.apply(CpuQos(INSTANCE, shares=2048))  # changed behind the agent's back
        _until(lambda: _shares(host) == 512, "the repair while the API is down")
        assert len(api.reports) == sent  # nothing could be sent meanwhile
        api.down = False
        _until(
            lambda: any(r.last_drift is not None for r in api.reports[-1]),
            "the report of the repair once the API is back",
        )
        last = api.reports[-1][0].last_drift
        assert last is not None
        assert "cpu.shares" in {d.aspect for d in last.drift}
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_restarted_agent_keeps_the_host_from_its_kept_state_while_the_api_is_away(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "desired.json"
    api = FlakyApi((server_of(hybrid_plan("m1-resquota.yaml"), "server-01"),))
    first = _agent(api, fake_drivers(), cache)
    first.register()
    first.step(0)
    assert cache.exists()
    api.down = True
    host = fake_drivers()  # the host as a reboot left it: nothing of the instance
    agent = _agent(api, host, cache)
    stop, thread = _running(agent)
    try:
        _until(
            lambda: INSTANCE in host.instances.names() and _shares(host) == 512,
            "the instance rebuilt from the kept state with the API down",
        )
        assert agent.revision == 7
    finally:
        stop.set()
        thread.join(timeout=5)


def test_without_a_kept_state_an_unreachable_api_changes_nothing(tmp_path: Path) -> None:
    api = FlakyApi((server_of(hybrid_plan("m1-resquota.yaml"), "server-01"),), down=True)
    host = fake_drivers()
    host.cgroups.apply(CpuQos("instance-000000aa", shares=100))  # something already there
    (tmp_path / "desired.json").write_text("{not json")  # a damaged copy is ignored
    agent = _agent(api, host, tmp_path / "desired.json")
    stop, thread = _running(agent)
    try:
        time.sleep(0.5)  # several attempts
        assert host.cgroups.groups() == {"instance-000000aa"}  # not removed as stale
    finally:
        stop.set()
        thread.join(timeout=5)
