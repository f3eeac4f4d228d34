"""Errors keep their meaning across each boundary: the client turns every status the API
answers back into the class the API raised, host tools' refusals are permanent and their
hiccups temporary, and the reconciler retries only what a retry can fix."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qosplane.agent.reconcile import (
    PERMANENT_RETRY_AFTER_S,
    RETRY_PAUSE_MAX_S,
    Reconciler,
    retry_pause_s,
    server_reports,
)
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.host.cgroups import FakeCgroups
from qosplane.host.errors import HostError, PermanentHostError
from qosplane.host.process import run
from qosplane.model.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    QosplaneError,
    RevisionMismatch,
    ServiceFault,
    Unauthorized,
    Unreachable,
)
from qosplane.model.host_state import Capabilities, CpuQos
from qosplane.model.plan import DesiredServer
from qosplane.model.report import ReportStatus
from qosplane.openstack.errors import ERROR_TABLE, error_for_status, wire_error
from tests.conftest import load_case, plan_of
from tests.hostkit import fake_drivers, server_of
from tests.serving import free_port
from tests.test_host_program import hybrid_plan

CAPS = Capabilities(htb=True, ifb_mirred=True, nft_bridge=True, cgroup_v1_cpu=True)


# --- the wire table, both ways -------------------------------------------------------------
@pytest.mark.parametrize("cls", list(ERROR_TABLE))
def test_every_error_class_comes_back_as_itself(cls: type[QosplaneError]) -> None:
    back = error_for_status(ERROR_TABLE[cls].status, "the service's words")
    assert type(back) is cls
    assert str(back) == "the service's words"


def test_unknown_and_server_statuses_are_service_faults() -> None:
    for status in (500, 502, 503, 418):
        back = error_for_status(status, "boom")
        assert isinstance(back, ServiceFault)
        assert str(back) == f"HTTP {status}: boom"
    assert wire_error(ServiceFault("x")).status == 500


@dataclass
class _Canned:
    """A local HTTP server answering each path with a fixed status and Nova-shaped body."""

    answers: dict[str, int] = field(default_factory=dict)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                if self.path.startswith("/identity/v3/auth/tokens"):
                    self.send_response(201)
                    self.send_header("X-Subject-Token", "t")
                    self.end_headers()
                    return
                status = answers.get(self.path, 404)
                body = json.dumps({"anyKey": {"code": status, "message": f"said {status}"}})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def canned() -> Iterator[tuple[_Canned, QosplaneClient]]:
    spec = _Canned()
    server = ThreadingHTTPServer(("127.0.0.1", 0), spec.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield spec, QosplaneClient(Credentials(endpoint, "u", "p", "proj"), timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidInput),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (412, RevisionMismatch),
        (500, ServiceFault),
        (503, ServiceFault),
    ],
)
def test_the_client_raises_what_the_api_raised(
    canned: tuple[_Canned, QosplaneClient], status: int, cls: type[QosplaneError]
) -> None:
    spec, client = canned
    spec.answers["/x"] = status
    with pytest.raises(cls, match=f"said {status}"):
        client.get("/x")


def test_a_401_renews_the_token_once_then_is_unauthorized(
    canned: tuple[_Canned, QosplaneClient],
) -> None:
    spec, client = canned
    spec.answers["/x"] = 401
    with pytest.raises(Unauthorized, match="said 401"):
        client.get("/x")


def test_a_refused_connection_is_unreachable_not_oserror() -> None:
    client = QosplaneClient(Credentials(f"http://127.0.0.1:{free_port()}", "u", "p", "proj"))
    with pytest.raises(Unreachable, match=r"127\.0\.0\.1"):
        client.get("/x")


# --- host tools: refusal or hiccup ---------------------------------------------------------
def test_a_missing_tool_is_permanent() -> None:
    with pytest.raises(PermanentHostError, match="is not installed"):
        run(["qosplane-no-such-tool-here"])


def test_a_refused_value_is_permanent_and_a_missing_device_temporary() -> None:
    with pytest.raises(PermanentHostError):
        run(["sh", "-c", "echo 'Error: Specified qdisc kind is unknown.' >&2; exit 2"])
    for hiccup in ('Cannot find device "tap0"', "RTNETLINK answers: Invalid argument"):
        with pytest.raises(HostError) as caught:
            run(["sh", "-c", f"echo '{hiccup}' >&2; exit 1"])
        assert caught.value.retryable
        assert not isinstance(caught.value, PermanentHostError)


# --- the reconciler: the one place that decides retry --------------------------------------
@dataclass
class _RefusingCgroups(FakeCgroups):
    """cgroups that refuse every write, permanently or for the moment."""

    error: HostError | None = field(default_factory=lambda: HostError("write", "busy"))
    applies: int = 0

    def apply(self, qos: CpuQos) -> None:
        self.applies += 1
        if self.error is not None:
            raise self.error
        super().apply(qos)


def _server(revision: int = 1) -> DesiredServer:
    return replace(server_of(hybrid_plan("m1-resquota.yaml"), "server-01"), plan_revision=revision)


def _reconciler(error: HostError) -> tuple[Reconciler, _RefusingCgroups, list[float]]:
    cgroups = _RefusingCgroups(error=error)
    base = fake_drivers()
    drivers = type(base)(
        base.instances, base.tc, base.dscp, cgroups, base.volumes, base.switch, base.hypervisor
    )
    reconciler = Reconciler(drivers, CAPS)
    now = [1000.0]
    reconciler.clock = lambda: now[0]
    return reconciler, cgroups, now


def test_a_permanent_refusal_is_not_retried_until_the_plan_changes() -> None:
    reconciler, cgroups, now = _reconciler(
        PermanentHostError("write 512 to cpu.shares", "Invalid argument")
    )
    targets, first = reconciler.converge([_server()])
    assert cgroups.applies == 1
    assert "Invalid argument" in first.errors["instance-00000041"]
    _, second = reconciler.converge([_server()])
    assert cgroups.applies == 1  # held back
    report = server_reports(targets, second)[0]
    assert (report.status, "Invalid argument" in report.error) == (ReportStatus.FAILED, True)
    reconciler.converge([_server(revision=2)])  # a new plan is tried at once
    assert cgroups.applies == 2
    reconciler.converge([_server(revision=2)])
    assert cgroups.applies == 2
    now[0] += PERMANENT_RETRY_AFTER_S + 1  # and an old one again after a while
    reconciler.converge([_server(revision=2)])
    assert cgroups.applies == 3


def test_a_temporary_failure_is_retried_next_pass_then_with_a_doubling_pause() -> None:
    """A server the host keeps failing on costs a bounded share of the passes."""
    reconciler, cgroups, now = _reconciler(HostError("write 512 to cpu.shares", "busy"))
    for passes in (1, 2):  # a hiccup is retried at once
        _, result = reconciler.converge([_server()])
        assert cgroups.applies == passes
        assert "busy" in result.errors["instance-00000041"]
    tried_at = []
    for _ in range(40):  # 20 s of passes, half a second apart
        now[0] += 0.5
        before = cgroups.applies
        targets, result = reconciler.converge([_server()])
        assert "busy" in result.errors["instance-00000041"]  # failed, also while waiting
        assert server_reports(targets, result)[0].status is ReportStatus.FAILED
        if cgroups.applies > before:
            tried_at.append(now[0] - 1000.0)
    assert tried_at == [1.0, 3.0, 7.0, 15.0]  # pauses of 1, 2, 4 and 8 s
    assert retry_pause_s(50) == RETRY_PAUSE_MAX_S
    cgroups.error = None  # the host recovers; a new plan is tried at once, and succeeds
    _, result = reconciler.converge([_server(revision=2)])
    assert cgroups.applies == 7
    assert not result.errors
    assert not reconciler.failures
    assert not reconciler.held


def test_a_held_back_server_keeps_its_dscp_mark_and_packet_limits() -> None:
    """The reconciler leaves a held server as it is: its nftables mark and packet limits
    are not 'stale'."""
    cgroups = _RefusingCgroups(error=PermanentHostError("write", "Invalid argument"))
    base = fake_drivers()
    drivers = type(base)(base.instances, base.tc, base.dscp, cgroups, base.volumes)
    reconciler = Reconciler(drivers, CAPS)
    body = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    body["host"] = {**(body.get("host") or {}), "vif_type": "hybrid"}
    body["ports"][0]["qos_policy"]["rules"].append(
        {"type": "packet_rate_limit", "max_kpps": 2, "max_burst_kpps": 1, "direction": "egress"}
    )
    plan_json = plan_of(body).to_json()
    plan_json["effective"].append(
        {
            "device": "cpu",
            "direction": "",
            "kind": "cpu_shares",
            "limit": {"weight": 512},
            "enforced_by": None,
            "declared": [],
            "artifacts": [
                {
                    "layer": "cgroup",
                    "artifact": "cpu.shares",
                    "mechanism": "weight",
                    "as_written": "cpu.shares=512",
                    "limit": {"weight": 512},
                    "holds": True,
                }
            ],
            "conflicts": [],
            "losses": [],
        }
    )
    server = server_of(plan_json, "server-02", net_prefix="10.78")
    reconciler.converge([server])
    assert base.dscp.observe() == {"tap68fe8005-c4": 26}
    limits = base.dscp.observe_all()[1]
    assert set(limits) == {("tap679563b6-d1", False)}
    assert reconciler.held  # the cgroup refusal holds the server back
    for _ in range(2):
        reconciler.converge([server])
        assert base.dscp.observe_all() == ({"tap68fe8005-c4": 26}, limits)
