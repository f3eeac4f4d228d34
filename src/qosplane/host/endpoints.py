"""Where a measuring program runs: a network namespace on this host (an instance, a probe,
a scratch end) or inside a real guest through its agent. `measure` speaks only to this
interface, so `verify` measures a guest from inside it exactly as it measures a namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol

from qosplane.host.errors import HostError
from qosplane.host.guest_agent import GuestAgent, GuestRun
from qosplane.host.process import in_netns, run


class Started(Protocol):
    def exited(self) -> bool: ...

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        """Wait for the program (killing it after `timeout_s`): exit code, stdout, stderr.
        Safe to call again: the same answer."""

    def stop(self) -> None:
        """Kill it if it still runs."""


class Endpoint(Protocol):
    label: str  # for errors: the namespace or the guest

    def run(self, argv: Sequence[str]) -> str:
        """`argv` to completion: its stdout; a HostError when it fails."""

    def start(self, argv: Sequence[str]) -> Started: ...

    def listening(self, tcp_port: int) -> bool:
        """Whether something listens on `tcp_port` here."""


class _Process:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.done: tuple[int, str, str] | None = None

    def exited(self) -> bool:
        return self.process.poll() is not None

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        if self.done is None:
            try:
                out, err = self.process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                out, err = self.process.communicate()
            self.done = (self.process.returncode, out, err)
        return self.done

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class NetnsEndpoint:
    def __init__(self, netns: str) -> None:
        self.label = netns
        self.netns = netns

    def run(self, argv: Sequence[str]) -> str:
        return run(in_netns(self.netns, argv))

    def start(self, argv: Sequence[str]) -> Started:
        return _Process(
            subprocess.Popen(
                in_netns(self.netns, argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )

    def listening(self, tcp_port: int) -> bool:
        shown = subprocess.run(
            in_netns(self.netns, ["ss", "-ltn", f"sport = :{tcp_port}"]),
            capture_output=True,
            text=True,
            check=False,
        )
        return f":{tcp_port}" in shown.stdout


def in_guest_shell(argv: Sequence[str]) -> list[str]:
    """guest-exec wants an absolute path: a shell finds the program on the guest's PATH."""
    return ["/bin/sh", "-c", 'exec "$@"', "sh", *argv]


class _GuestProgram:
    """qemu-ga forgets a program's status once it has reported it exited: the first answer
    is kept, so `exited`, `finish` and `stop` may be called in any order, again."""

    def __init__(self, agent: GuestAgent, pid: int) -> None:
        self.agent, self.pid = agent, pid
        self.done: GuestRun | None = None

    def exited(self) -> bool:
        if self.done is None:
            self.done = self.agent.status(self.pid)
        return self.done is not None

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        if self.done is None:
            self.done = self.agent.wait(self.pid, timeout_s)  # killed past the timeout
        out, err = self.done.stdout, self.done.stderr
        return self.done.exit_code, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self) -> None:
        if not self.exited():
            self.agent.kill(self.pid)
            self.done = self.agent.wait(self.pid, 10)


class GuestEndpoint:
    RUN_TIMEOUT_S = 120.0  # a TCG guest is slow, and a measurement runs for seconds

    def __init__(self, agent: GuestAgent, label: str) -> None:
        self.agent = agent
        self.label = f"guest {label}"

    def run(self, argv: Sequence[str]) -> str:
        done = self.agent.run(in_guest_shell(argv), self.RUN_TIMEOUT_S)
        if done.exit_code != 0:
            text = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise HostError(f"{self.label}: {' '.join(argv)}", text or f"exit {done.exit_code}")
        return done.stdout.decode(errors="replace")

    def start(self, argv: Sequence[str]) -> Started:
        return _GuestProgram(self.agent, self.agent.start(in_guest_shell(argv)))

    def listening(self, tcp_port: int) -> bool:
        return f":{tcp_port} " in self.run(["netstat", "-ltn"])


def endpoint(where: str | Endpoint) -> Endpoint:
    """A namespace's name stands for that namespace."""
    return NetnsEndpoint(where) if isinstance(where, str) else where
