"""cgroup settings libvirt writes for a domain's `<cputune>`, on cgroup v1 and v2.

libvirt vircgroupv1.c/vircgroupv2.c: shares -> v1 `cpu.shares` or v2 `cpu.weight` with no
conversion; period/quota go to each vCPU thread's cgroup (`cpu.cfs_period_us` /
`cpu.cfs_quota_us` on v1, `cpu.max` "QUOTA PERIOD" on v2, a negative quota written as
`max`). Nova uses QEMU throttling for disks, so no blkio/io files are written.
"""

from __future__ import annotations

from dataclasses import dataclass

from qosplane.model.flavor import CpuTune
from qosplane.model.units import (
    CFS_PERIOD_MAX_US,
    CFS_PERIOD_MIN_US,
    CFS_QUOTA_MAX_US,
    CFS_QUOTA_MIN_US,
    CGROUP_V1_SHARES_MAX,
    CGROUP_V1_SHARES_MIN,
    CGROUP_V2_WEIGHT_MAX,
    CGROUP_V2_WEIGHT_MIN,
)

DEFAULT_V2_PERIOD_US = 100_000


@dataclass(frozen=True, slots=True)
class CgroupProblem:
    code: str
    message: str
    key: str
    fatal: bool  # True: libvirt refuses to start the guest


def cgroup_settings(cpu: CpuTune, vcpus: int) -> dict[str, dict[str, str]]:
    """{"v1": {file: value}, "v2": {file: value}}. Per-vCPU files are `vcpuN/<file>`."""
    v1: dict[str, str] = {}
    v2: dict[str, str] = {}
    if cpu.shares is not None:
        v1["cpu.shares"] = str(cpu.shares)
        v2["cpu.weight"] = str(cpu.shares)
    if cpu.period_us is not None or cpu.quota_us is not None:
        for n in range(vcpus):
            if cpu.period_us is not None:
                v1[f"vcpu{n}/cpu.cfs_period_us"] = str(cpu.period_us)
            if cpu.quota_us is not None:
                v1[f"vcpu{n}/cpu.cfs_quota_us"] = str(cpu.quota_us)
            period = cpu.period_us if cpu.period_us else DEFAULT_V2_PERIOD_US
            quota = (
                "max"
                if cpu.quota_us is None or cpu.quota_us < 0 or cpu.quota_us == CFS_QUOTA_MAX_US
                else str(cpu.quota_us)
            )
            v2[f"vcpu{n}/cpu.max"] = f"{quota} {period}"
    return {"v1": v1, "v2": v2}


def cgroup_problems(cpu: CpuTune, v2: bool) -> list[CgroupProblem]:
    """What libvirt or the kernel refuses (fatal) for these values on this cgroup version."""
    problems: list[CgroupProblem] = []
    if cpu.shares is not None and cpu.shares > 0:
        if not CGROUP_V1_SHARES_MIN <= cpu.shares <= CGROUP_V1_SHARES_MAX:
            problems.append(
                CgroupProblem(
                    "cpu_shares_out_of_range",
                    f"cpu_shares {cpu.shares} is outside libvirt's range "
                    f"[{CGROUP_V1_SHARES_MIN}, {CGROUP_V1_SHARES_MAX}]; the guest will not start",
                    "quota:cpu_shares",
                    True,
                )
            )
        elif v2 and not CGROUP_V2_WEIGHT_MIN <= cpu.shares <= CGROUP_V2_WEIGHT_MAX:
            problems.append(
                CgroupProblem(
                    "cpu_shares_above_cgroup_v2_max",
                    f"cpu_shares {cpu.shares} becomes cpu.weight {cpu.shares} on cgroup v2, whose "
                    f"range is [{CGROUP_V2_WEIGHT_MIN}, {CGROUP_V2_WEIGHT_MAX}]; the guest will not "
                    "start (Nova bug 1978489)",
                    "quota:cpu_shares",
                    True,
                )
            )
    if (
        cpu.period_us is not None
        and cpu.period_us != 0
        and not (CFS_PERIOD_MIN_US <= cpu.period_us <= CFS_PERIOD_MAX_US)
    ):
        problems.append(
            CgroupProblem(
                "cpu_period_out_of_range",
                f"cpu_period {cpu.period_us} us is outside [{CFS_PERIOD_MIN_US}, {CFS_PERIOD_MAX_US}]",
                "quota:cpu_period",
                True,
            )
        )
    if (
        cpu.quota_us is not None
        and cpu.quota_us > 0
        and not (CFS_QUOTA_MIN_US <= cpu.quota_us <= CFS_QUOTA_MAX_US)
    ):
        problems.append(
            CgroupProblem(
                "cpu_quota_out_of_range",
                f"cpu_quota {cpu.quota_us} us is outside [{CFS_QUOTA_MIN_US}, {CFS_QUOTA_MAX_US}] "
                "(negative means unlimited)",
                "quota:cpu_quota",
                True,
            )
        )
    return problems
