"""A `qosplane serve` subprocess for the tests that drive it over HTTP (the real CLI, the
agent): started without its local agent on a free port, waited for, stopped; and the
agent-thread rig the functional tests share."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qosplane.agent.loop import Agent
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.model.host_facts import HostFacts
from qosplane.model.host_state import Capabilities
from qosplane.model.report import ServerStatus

QOSPLANE = Path(sys.executable).parent / "qosplane"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def openrc_env(state: Path) -> dict[str, str]:
    """This environment without its OS_* variables, and `qosplane openrc`'s for the serve
    whose state is `state` (what `eval $(qosplane openrc)` leaves a shell with)."""
    openrc = subprocess.run(
        [str(QOSPLANE), "openrc", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    for line in openrc.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"")
    return env


@contextmanager
def running_serve(
    state: Path,
    timeout_s: float = 30,
    extra_args: tuple[str, ...] = (),
    local_agent: tuple[str, ...] | None = None,
) -> Iterator[str]:
    """The endpoint (http://127.0.0.1:PORT) of a serve with its state in `state`: without
    its local agent, or with it and these host options (`--prefix ...`)."""
    port = free_port()
    log_path = state / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(QOSPLANE),
                "serve",
                *(("--no-agent",) if local_agent is None else local_agent),
                "--state-dir",
                str(state),
                "--listen",
                f"127.0.0.1:{port}",
                "--password-hash-rounds",  # as tests/conftest.py's APIs, for speed
                "1000",
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/identity/v3", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(log_path.read_text()) from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass
class ServedHost:
    """A serve and one agent thread for a host: the admin's client and its OS_* env."""

    client: QosplaneClient
    env: dict[str, str]
    host: str


@contextmanager
def serve_with_agent(
    state: Path,
    host: str,
    drivers: HostDrivers,
    caps: Capabilities,
    facts: HostFacts,
    drift_check_s: float = 1.0,
) -> Iterator[ServedHost]:
    """`running_serve` plus an agent thread for `host` on `drivers`, stopped afterwards."""
    stop = threading.Event()
    with running_serve(state) as endpoint:
        admin = json.loads((state / "admin.json").read_text())
        client = QosplaneClient(Credentials(endpoint, "admin", admin["password"], "admin"))
        agent = Agent(
            client, host, Reconciler(drivers, caps), facts=facts, drift_check_s=drift_check_s
        )
        agent.register()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
            "OS_AUTH_URL": f"{endpoint}/identity/v3",
            "OS_USERNAME": "admin",
            "OS_PASSWORD": admin["password"],
            "OS_PROJECT_NAME": "admin",
        }
        try:
            yield ServedHost(client, env, host)
        finally:
            stop.set()
            thread.join(timeout=10)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def applied_revision(status: ServerStatus) -> int | None:
    """The plan revision the agent last reported for the server; None before its first."""
    return status.report.plan_revision if status.report else None


def wait_applied(client: QosplaneClient, server_id: str, what: str, timeout_s: float = 30) -> None:
    """Until the agent has reported the server's current plan revision."""
    wait_for(
        lambda: (
            applied_revision(client.server_status(server_id))
            == client.server_plan(server_id).desired.plan_revision
        ),
        timeout_s,
        what,
    )
