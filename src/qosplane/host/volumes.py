"""Volumes for netns instances: one qemu-storage-daemon per attached volume, exporting the
volume's image over NBD (a unix socket) through a `throttle` node whose throttle-group
carries the volume's front-end limits, the same QEMU throttling a guest's `-drive` gets.

The daemon runs detached (it outlives the agent, as a guest's disk outlives nova-compute).
Its QMP socket is both the observation (`qom-get` of the throttle-group's `limits`, so a
change made behind the agent's back is seen) and the live re-tune (`qom-set`, no restart,
the export stays up). Images are allocated with zeros over their first
MiBs: on a sparse region the NBD server answers from block status without reading through
the throttle node, so a hole is never throttled (measured, docs/agent.md).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qosplane.compiler.enforcement.backends.libvirt_domain import NBD_EXPORT
from qosplane.host.errors import HostError
from qosplane.host.process import run

ALLOCATED_BYTES = 64 * 1024 * 1024  # the region a measurement reads: real data, no holes
# The throttle-group limits qosplane sets (QEMU's ThrottleLimits); bursts stay QEMU's.
THROTTLE_KEYS = ("bps-read", "bps-write", "bps-total", "iops-read", "iops-write", "iops-total")
QMP_TIMEOUT_S = 5.0


class Volumes(Protocol):
    def ensure(self, volume_id: str, size_gb: int, limits: Mapping[str, int]) -> None:
        """Export the volume with exactly these throttle-group limits (x-iops-read=...)."""

    def observe(self, volume_id: str) -> dict[str, int] | None:
        """The limits a running export was started with; None when none runs."""

    def remove(self, volume_id: str) -> None: ...

    def volume_ids(self) -> set[str]: ...

    def socket(self, volume_id: str) -> str: ...


class RealVolumes:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, volume_id: str, suffix: str) -> Path:
        return self.root / f"{volume_id}{suffix}"

    def socket(self, volume_id: str) -> str:
        return str(self._path(volume_id, ".sock"))

    def _pid(self, volume_id: str) -> int | None:
        try:
            pid = int(self._path(volume_id, ".pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"qemu-storage-daemon" in cmdline else None

    def _qmp(self, volume_id: str, command: dict[str, object]) -> object:
        """One QMP command on the daemon's monitor socket; HostError if it fails."""
        path = str(self._path(volume_id, ".qmp"))
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(QMP_TIMEOUT_S)
                conn.connect(path)
                stream = conn.makefile("rw")
                stream.readline()  # the greeting
                answer: dict[str, object] = {}
                for message in ({"execute": "qmp_capabilities"}, command):
                    stream.write(json.dumps(message) + "\n")
                    stream.flush()
                    while True:  # skip asynchronous events
                        answer = json.loads(stream.readline() or "{}")
                        if "return" in answer or "error" in answer or not answer:
                            break
                    if "return" not in answer:
                        raise HostError(f"QMP {command['execute']} on {path}", str(answer))
                return answer["return"]
        except (OSError, ValueError) as exc:
            raise HostError(f"QMP on {path}", str(exc)) from None

    def observe(self, volume_id: str) -> dict[str, int] | None:
        """The limits the running export applies now, read from QEMU itself."""
        if self._pid(volume_id) is None:
            return None
        limits = self._qmp(
            volume_id,
            {"execute": "qom-get", "arguments": {"path": "tg0", "property": "limits"}},
        )
        assert isinstance(limits, dict)
        return {f"x-{k}": int(limits[k]) for k in THROTTLE_KEYS if limits.get(k)}

    def _image(self, volume_id: str, size_gb: int) -> Path:
        image = self._path(volume_id, ".img")
        if not image.exists():
            with image.open("wb") as f:
                f.write(b"\0" * min(ALLOCATED_BYTES, size_gb * 1024**3))
                f.truncate(size_gb * 1024**3)
        return image

    def ensure(self, volume_id: str, size_gb: int, limits: Mapping[str, int]) -> None:
        if self._pid(volume_id) is not None:
            # Live re-tune: every key written, so a limit removed from the spec goes too.
            value = {k: int(limits.get(f"x-{k}", 0)) for k in THROTTLE_KEYS}
            self._qmp(
                volume_id,
                {
                    "execute": "qom-set",
                    "arguments": {"path": "tg0", "property": "limits", "value": value},
                },
            )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        image = self._image(volume_id, size_gb)
        sock = Path(self.socket(volume_id))
        sock.unlink(missing_ok=True)  # left by a daemon that died
        self._path(volume_id, ".qmp").unlink(missing_ok=True)
        group = ",".join(f"{k}={v}" for k, v in sorted(limits.items()))
        run(
            [
                "qemu-storage-daemon",
                "--object",
                f"throttle-group,id=tg0{',' + group if group else ''}",
                "--blockdev",
                f"driver=file,filename={image},node-name=file0,cache.direct=off",
                "--blockdev",
                "driver=throttle,throttle-group=tg0,file=file0,node-name=thr0",
                "--nbd-server",
                f"addr.type=unix,addr.path={sock}",
                "--export",
                f"type=nbd,id=exp0,node-name=thr0,name={NBD_EXPORT},writable=on",
                "--chardev",
                f"socket,id=qmp0,path={self._path(volume_id, '.qmp')},server=on,wait=off",
                "--monitor",
                "chardev=qmp0",
                "--pidfile",
                str(self._path(volume_id, ".pid")),
                "--daemonize",
            ]
        )

    def _stop(self, volume_id: str) -> None:
        pid = self._pid(volume_id)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if self._pid(volume_id) is None:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def remove(self, volume_id: str) -> None:
        self._stop(volume_id)
        for suffix in (".img", ".sock", ".pid", ".qmp"):
            self._path(volume_id, suffix).unlink(missing_ok=True)

    def remove_everything(self) -> None:
        """Tests, benchmarks and uninstall: every export and image under the root."""
        for volume_id in self.volume_ids():
            self.remove(volume_id)

    def volume_ids(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.name.removesuffix(".img") for p in self.root.glob("*.img")}


@dataclass
class FakeVolumes:
    exports: dict[str, dict[str, int]] = field(default_factory=dict)

    def ensure(self, volume_id: str, size_gb: int, limits: Mapping[str, int]) -> None:
        if size_gb <= 0:
            raise HostError("qemu-storage-daemon", "size must be positive")
        self.exports[volume_id] = dict(limits)

    def observe(self, volume_id: str) -> dict[str, int] | None:
        return self.exports.get(volume_id)

    def remove(self, volume_id: str) -> None:
        self.exports.pop(volume_id, None)

    def volume_ids(self) -> set[str]:
        return set(self.exports)

    def socket(self, volume_id: str) -> str:
        return f"/fake/{volume_id}.sock"
