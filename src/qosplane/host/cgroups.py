"""The cpu controller, v1 or v2: one group per instance under the agent's root group.

The weight is among siblings, so instances compete with each other under one parent, as
libvirt's machine.slice does. v1 writes cpu.shares and the cfs files; v2 writes cpu.weight
(the same number: libvirt's vircgroupv2.c does not convert shares) and cpu.max "QUOTA
PERIOD", after enabling the controller for the root's children (cgroup.subtree_control).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qosplane.host.errors import HostError, PermanentHostError
from qosplane.model.host_state import (
    CFS_DEFAULT_PERIOD_US,
    CGROUP_V1_DEFAULT_SHARES,
    CGROUP_V2_DEFAULT_WEIGHT,
    CpuQos,
)

CPU_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
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


class _CgroupTree:
    """What v1 and v2 share: groups are directories under `base`, files are written whole,
    processes leave a group for `evacuate` before it is removed."""

    root: str
    base: Path
    evacuate: Path  # the cgroup.procs a removed group's processes move to

    def _dir(self, group: str) -> Path:
        return self.base / group

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            # The kernel refuses a value it cannot take (EINVAL, ERANGE) the same way each time.
            kind = PermanentHostError if exc.errno in (errno.EINVAL, errno.ERANGE) else HostError
            raise kind(f"write {value} to {path}", exc.strerror or str(exc)) from None

    def _mkdir(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HostError(f"mkdir {directory}", exc.strerror or str(exc)) from None

    def remove(self, group: str) -> None:
        directory = self._dir(group)
        if not directory.is_dir():
            return
        # Processes still inside move out first, or rmdir fails with EBUSY.
        for pid in (directory / "cgroup.procs").read_text().split():
            try:
                self.evacuate.write_text(pid)
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


class RealCgroups(_CgroupTree):
    """cgroup v1: /sys/fs/cgroup/cpu/<root>/<group>."""

    def __init__(self, root: str = "qosplane", mount: Path = CPU_V1) -> None:
        self.root = root
        self.base = mount / root
        self.evacuate = self.base / "cgroup.procs"

    def apply(self, qos: CpuQos) -> None:
        directory = self._dir(qos.group)
        self._mkdir(directory)
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


class RealCgroupsV2(_CgroupTree):
    """cgroup v2: <mount>/<root>/<group>. The root group only delegates (v2's no-internal-
    processes rule: a group that enables controllers for its children holds no process), so
    a removed group's processes go back to the hierarchy's top."""

    def __init__(self, root: str = "qosplane", mount: Path = CGROUP_V2) -> None:
        self.root = root
        self.mount = mount
        self.base = mount / root
        self.evacuate = mount / "cgroup.procs"

    def _enable_cpu(self, directory: Path) -> None:
        control = directory / "cgroup.subtree_control"
        try:
            enabled = control.read_text().split() if control.exists() else []
        except OSError as exc:
            raise HostError(f"read {control}", exc.strerror or str(exc)) from None
        if "cpu" not in enabled:
            self._write(control, "+cpu")

    def apply(self, qos: CpuQos) -> None:
        self._enable_cpu(self.mount)
        self._mkdir(self.base)
        self._enable_cpu(self.base)
        directory = self._dir(qos.group)
        self._mkdir(directory)
        self._write(directory / "cpu.weight", str(qos.shares or CGROUP_V2_DEFAULT_WEIGHT))
        quota = "max" if qos.cfs_quota_us is None else str(qos.cfs_quota_us)
        self._write(directory / "cpu.max", f"{quota} {qos.cfs_period_us or DEFAULT_PERIOD_US}")

    def observe(self, group: str) -> CpuQos | None:
        directory = self._dir(group)
        if not directory.is_dir() or not (directory / "cpu.weight").exists():
            return None
        quota, period = (directory / "cpu.max").read_text().split()
        return CpuQos(
            group=group,
            shares=int((directory / "cpu.weight").read_text()),
            cfs_quota_us=None if quota == "max" else int(quota),
            cfs_period_us=int(period),
            v2=True,
        )


@dataclass
class FakeCgroups:
    root: str = "qosplane"
    state: dict[str, CpuQos] = field(default_factory=dict)

    def apply(self, qos: CpuQos) -> None:
        self.state[qos.group] = CpuQos(
            qos.group,
            qos.shares or qos.default_shares,
            qos.cfs_quota_us,
            qos.cfs_period_us or DEFAULT_PERIOD_US,
            qos.v2,
        )

    def observe(self, group: str) -> CpuQos | None:
        return self.state.get(group)

    def remove(self, group: str) -> None:
        self.state.pop(group, None)

    def groups(self) -> set[str]:
        return set(self.state)

    def procs_file(self, group: str) -> str:
        return f"/fake/{self.root}/{group}/cgroup.procs"


# --- a libvirt domain's own group ------------------------------------------------------------


def _mount(controller: str) -> Path:
    """Where `controller`'s v1 hierarchy is mounted (alone, or with others: cpu,cpuacct);
    "" for the v2 hierarchy."""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        if controller == "" and fstype == "cgroup2":
            return Path(point)
        if fstype == "cgroup" and controller in options.split(","):
            return Path(point)
    raise HostError("cgroup", f"no hierarchy holds the {controller or 'v2'} controller")


def domain_group(pid: int, controller: str = "cpuacct") -> tuple[Path, bool] | None:
    """The directory of the whole group of the domain whose QEMU process is `pid`, in
    `controller`'s v1 hierarchy or else v2's, and whether it is v2; None when libvirt gave
    the domain no group there (it leaves a v1 controller out when that controller is
    mounted alone, as cpuacct is on this machine). libvirt puts QEMU's main thread in the
    domain group's `emulator` child and each vCPU in a `vcpuN` child (qemu_cgroup.c): the
    group they share is its parent."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as exc:
        raise HostError(f"cgroup of process {pid}", exc.strerror or str(exc)) from None
    found = domain_group_path(text, controller)
    if found is None:
        return None
    parts, v2 = found
    return _mount("" if v2 else controller).joinpath(*parts), v2


def domain_group_path(proc_cgroup: str, controller: str) -> tuple[list[str], bool] | None:
    """`domain_group` on the text of /proc/PID/cgroup: the domain group's path parts under
    the hierarchy's mount, and whether it is v2's."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for each in controllers.split(",") if controllers else [""]:
            paths[each] = path
    # A v1 controller is listed by name; on a v2-only host only "0::PATH" is.
    v2 = controller not in paths and set(paths) <= {""}
    parts = [p for p in paths.get("" if v2 else controller, "").split("/") if p]
    if parts and (parts[-1] == "emulator" or parts[-1].startswith("vcpu")):
        parts.pop()
    return (parts, v2) if parts else None


def group_cpu_seconds(directory: Path, v2: bool) -> float:
    """CPU time the group's processes have used, children included."""
    try:
        if v2:
            for line in (directory / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) / 1e6
            raise HostError(f"read {directory}/cpu.stat", "no usage_usec")
        return int((directory / "cpuacct.usage").read_text()) / 1e9
    except OSError as exc:
        raise HostError(f"CPU usage of {directory}", exc.strerror or str(exc)) from None


def domain_cpu_files(pid: int) -> dict[str, int] | None:
    """What the domain's own cgroup files hold for its CPU, in libvirt's scheduler names
    (`inspect` compares them with schedinfo and the plan): `cpu_shares` from the domain
    group's cpu.shares (v1) or cpu.weight (v2, where libvirt writes the shares as the weight
    itself), `vcpu_quota` and `vcpu_period` from the first vCPU's group (cfs_quota_us and
    cfs_period_us, or cpu.max); a quota of -1 (v1) or "max" (v2) is none. None when libvirt
    gave the domain no cpu group. Read-only."""
    found = domain_group(pid, "cpu")
    if found is None:
        return None
    directory, v2 = found
    vcpu = directory / "vcpu0"
    out: dict[str, int] = {}
    try:
        if v2:
            out["cpu_shares"] = int((directory / "cpu.weight").read_text())
            if (vcpu / "cpu.max").exists():
                max_quota, max_period = (vcpu / "cpu.max").read_text().split()
                out["vcpu_period"] = int(max_period)
                if max_quota != "max":
                    out["vcpu_quota"] = int(max_quota)
        else:
            out["cpu_shares"] = int((directory / "cpu.shares").read_text())
            if (vcpu / "cpu.cfs_period_us").exists():
                out["vcpu_period"] = int((vcpu / "cpu.cfs_period_us").read_text())
                quota = int((vcpu / "cpu.cfs_quota_us").read_text())
                if quota != -1:
                    out["vcpu_quota"] = quota
    except (OSError, ValueError) as exc:
        raise HostError(f"read the CPU files of {directory}", str(exc)) from None
    return out
