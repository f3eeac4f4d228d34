"""Commands inside a guest, through the QEMU guest agent (`qemu-ga`) on its
`org.qemu.guest_agent.0` channel: `guest-exec` starts a program, `guest-exec-status` is
polled until it exits and hands back its exit code and base64 output (QEMU's
qga/qapi-schema.json). It is the channel libvirt also speaks (`virsh qemu-agent-command`).

The transport is one method (send a command, get its answer), so the same client runs over
the channel's unix socket (a guest QEMU runs for qosplane) or over libvirt's
`qemuAgentCommand` (a domain libvirt runs, which holds that socket itself).
"""

from __future__ import annotations

import base64
import json
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from qosplane.host.errors import HostError

SYNC_DELIMITER = b"\xff"  # what qemu-ga sends before its answer to guest-sync-delimited
GUEST_READY_S = 120.0  # a guest just started under TCG answers in ~10-15 s


class AgentTransport(Protocol):
    def command(self, message: dict[str, Any], timeout_s: float) -> Any:
        """Send one QMP-style command; its `return` value (a HostError on an `error`)."""


@dataclass(frozen=True, slots=True)
class GuestRun:
    exit_code: int
    stdout: bytes
    stderr: bytes


class SocketTransport:
    """The channel's unix socket, QEMU's `-chardev socket,server=on`. Each command opens a
    connection and synchronises first (guest-sync-delimited), so an answer left over from a
    command that timed out is never read as this one's."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, message: dict[str, Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(max(0.1, timeout_s))
            try:
                sock.connect(str(self.path))
                token = random.randrange(1, 2**31)
                sync = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
                sock.sendall(SYNC_DELIMITER + json.dumps(sync).encode() + b"\n")
                reader = _Lines(sock, deadline)
                while True:  # skip whatever precedes the delimiter and our token
                    answer = reader.answer()
                    if answer.get("return") == token:
                        break
                sock.sendall(json.dumps(message).encode() + b"\n")
                return _returned(message, reader.answer())
            except OSError as exc:
                raise HostError(f"guest agent {self.path}", str(exc)) from exc


class _Lines:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buffer = sock, deadline, b""

    def answer(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            if time.monotonic() > self.deadline:
                raise TimeoutError("no answer from the guest agent in time")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the guest agent closed the channel")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.replace(SYNC_DELIMITER, b"").strip()
        if not text:
            return {}
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ConnectionError(f"the guest agent sent {text[:80]!r}") from exc
        return parsed if isinstance(parsed, dict) else {}


def _returned(message: dict[str, Any], answer: dict[str, Any]) -> Any:
    if "error" in answer:
        error = answer["error"]
        raise HostError(f"guest agent {message['execute']}", str(error.get("desc", error)))
    return answer.get("return")


class GuestAgent:
    """`run` a program in the guest and wait for it."""

    def __init__(self, transport: AgentTransport, poll_s: float = 0.05) -> None:
        self.transport = transport
        self.poll_s = poll_s

    def ping(self, timeout_s: float = 2.0) -> None:
        self.transport.command({"execute": "guest-ping"}, timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Until the agent answers: a booting guest's comes up some seconds after QEMU."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.ping()
            except (HostError, TimeoutError, ConnectionError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise HostError(
                        "guest agent", f"not ready in {timeout_s:.0f} s: {exc}"
                    ) from exc
                time.sleep(0.5)
            else:
                return

    def start(self, argv: Sequence[str], timeout_s: float = 10.0) -> int:
        """Start `argv` (an absolute path first) in the guest; its guest pid."""
        if not argv:
            raise ValueError("nothing to run")
        started = self.transport.command(
            {
                "execute": "guest-exec",
                "arguments": {"path": argv[0], "arg": list(argv[1:]), "capture-output": True},
            },
            timeout_s,
        )
        return int(started["pid"])

    def status(self, pid: int, timeout_s: float = 10.0) -> GuestRun | None:
        """What the program `pid` left once it exited; None while it runs."""
        status = self.transport.command(
            {"execute": "guest-exec-status", "arguments": {"pid": pid}}, timeout_s
        )
        if not isinstance(status, dict):
            raise HostError("guest agent guest-exec-status", f"answered {status!r}")
        if not status.get("exited"):
            return None
        # A program killed by a signal has no exitcode, only the signal (qapi GuestExecStatus).
        code = status.get("exitcode")
        return GuestRun(
            int(code) if code is not None else 128 + int(status.get("signal", 0)),
            base64.b64decode(status.get("out-data", "")),
            base64.b64decode(status.get("err-data", "")),
        )

    def wait(self, pid: int, timeout_s: float, what: str = "program") -> GuestRun:
        """Until `pid` exits; past `timeout_s` it is killed (a stray iperf3 server would
        hold its port for every later measurement) and a HostError raised."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = self.status(pid)
            if done is not None:
                return done
            if time.monotonic() > deadline:
                self.kill(pid)
                raise HostError(f"guest {what}", f"still running after {timeout_s:.0f} s")
            time.sleep(self.poll_s)

    def kill(self, pid: int) -> None:
        """SIGKILL `pid` in the guest; its status is then left unread (qemu-ga keeps it
        until read once)."""
        killer = self.start(["/bin/kill", "-9", str(pid)])
        deadline = time.monotonic() + 10
        while self.status(killer) is None and time.monotonic() < deadline:
            time.sleep(self.poll_s)

    def run(self, argv: Sequence[str], timeout_s: float = 60.0) -> GuestRun:
        return self.wait(self.start(argv, timeout_s), timeout_s, argv[0] if argv else "")
