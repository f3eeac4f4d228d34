"""Running host tools (ip, tc, nft): the one place that starts processes, so every failure
becomes a HostError carrying the command and its stderr."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from qosplane.host.errors import HostError, PermanentHostError, host_error

TIMEOUT_S = 30


def run(argv: Sequence[str], input_text: str | None = None) -> str:
    """Run `argv` and return its stdout; a HostError when it fails or hangs, permanent when
    the tool is missing or refuses the value (host_error)."""
    try:
        done = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise PermanentHostError(" ".join(argv[:2]), f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise HostError(" ".join(argv), f"no answer within {TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise host_error(" ".join(argv), done.stderr or done.stdout or f"exit {done.returncode}")
    return done.stdout


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run inside network namespace `netns` (None: the agent's own)."""
    if netns is None:
        return list(argv)
    return ["ip", "netns", "exec", netns, *argv]
