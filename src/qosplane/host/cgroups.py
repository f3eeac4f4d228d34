"""cgroup v1 cpu controller: one group per instance under the agent's root group.

cpu.shares is a weight among siblings, so instances compete with each other under one
parent, as libvirt's machine.slice does. v2 (cpu.weight, cpu.max) is not written here yet:
this host mounts v1 (shared/reference/host-capabilities.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qosplane.host.errors import HostError
from qosplane.model.host_state import CFS_DEFAULT_PERIOD_US, CGROUP_V1_DEFAULT_SHARES, CpuQos

CPU_V1 = Path("/sys/fs/cgroup/cpu")
DEFAULT_PERIOD_US = CFS_DEFAULT_PERIOD_US
UNLIMITED_QUOTA = -1
DEFAULT_SHARES = CGROUP_V1_DEFAULT_SHARES


class Cgroups(Protocol):
    root: str

    def apply(self, qos: CpuQos) -> None: ...

    def observe(self, group: str) -> CpuQos | None: ...

    def remove(self, group: str) -> None: ...

    def groups(self) -> set[str]: ...

    def procs_file(self, group: str) -> str: ...


class RealCgroups:
    def __init__(self, root: str = "qosplane", mount: Path = CPU_V1) -> None:
        self.root = root
        self.base = mount / root

    def _dir(self, group: str) -> Path:
        return self.base / group

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            raise HostError(f"write {value} to {path}", exc.strerror or str(exc)) from None

    def apply(self, qos: CpuQos) -> None:
        directory = self._dir(qos.group)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HostError(f"mkdir {directory}", exc.strerror or str(exc)) from None
        self._write(directory / "cpu.shares", str(qos.shares or DEFAULT_SHARES))
        self._write(directory / "cpu.cfs_period_us", str(qos.cfs_period_us or DEFAULT_PERIOD_US))
        self._write(directory / "cpu.cfs_quota_us", str(qos.cfs_quota_us or UNLIMITED_QUOTA))

    def observe(self, group: str) -> CpuQos | None:
        directory = self._dir(group)
        if not directory.is_dir():
            return None
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        return CpuQos(
            group=group,
            shares=int((directory / "cpu.shares").read_text()),
            cfs_quota_us=None if quota == UNLIMITED_QUOTA else quota,
            cfs_period_us=int((directory / "cpu.cfs_period_us").read_text()),
        )

    def remove(self, group: str) -> None:
        directory = self._dir(group)
        if not directory.is_dir():
            return
        # Processes still inside move to the root group first, or rmdir fails with EBUSY.
        for pid in (directory / "cgroup.procs").read_text().split():
            try:
                (self.base / "cgroup.procs").write_text(pid)
            except OSError:
                continue  # exited meanwhile
        try:
            os.rmdir(directory)
        except OSError as exc:
            raise HostError(f"rmdir {directory}", exc.strerror or str(exc)) from None

    def groups(self) -> set[str]:
        if not self.base.is_dir():
            return set()
        return {p.name for p in self.base.iterdir() if p.is_dir()}

    def procs_file(self, group: str) -> str:
        return str(self._dir(group) / "cgroup.procs")

    def remove_everything(self) -> None:
        """Tests, benchmarks and uninstall: every group under the root, then the root."""
        for group in self.groups():
            self.remove(group)
        if self.base.is_dir():
            os.rmdir(self.base)


@dataclass
class FakeCgroups:
    root: str = "qosplane"
    state: dict[str, CpuQos] = field(default_factory=dict)

    def apply(self, qos: CpuQos) -> None:
        self.state[qos.group] = CpuQos(
            qos.group,
            qos.shares or DEFAULT_SHARES,
            qos.cfs_quota_us,
            qos.cfs_period_us or DEFAULT_PERIOD_US,
        )

    def observe(self, group: str) -> CpuQos | None:
        return self.state.get(group)

    def remove(self, group: str) -> None:
        self.state.pop(group, None)

    def groups(self) -> set[str]:
        return set(self.state)

    def procs_file(self, group: str) -> str:
        return f"/fake/{self.root}/{group}/cgroup.procs"
