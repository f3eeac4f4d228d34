"""A `qosplane serve` subprocess for the tests that drive it over HTTP (the real CLI, the
agent): started without its local agent on a free port, waited for, stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

QOSPLANE = Path(sys.executable).parent / "qosplane"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_serve(state: Path, timeout_s: float = 30) -> Iterator[str]:
    """The endpoint (http://127.0.0.1:PORT) of a serve with its state in `state`."""
    port = free_port()
    log_path = state / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(QOSPLANE),
                "serve",
                "--no-agent",
                "--state-dir",
                str(state),
                "--listen",
                f"127.0.0.1:{port}",
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
