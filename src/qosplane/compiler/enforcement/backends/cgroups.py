"""The instance's cgroup (v1 cpu.shares and CFS quota, or v2 cpu.weight and cpu.max), for
instances that are not libvirt domains (libvirt writes a domain's own group)."""

from __future__ import annotations

from qosplane.compiler.enforcement.base import Claim, Decision, Desired
from qosplane.model.host_state import Capabilities, CpuQos, Mechanism
from qosplane.model.plan import CpuQuota, CpuWeight

CPU_KINDS = ("cpu_shares", "cpu_quota")


def record_cpu(claim: Claim, desired: Desired) -> None:
    """The flavor's weight or quota, as both cpu backends keep it."""
    if isinstance(claim.limit, CpuWeight):
        desired.cpu["shares"] = claim.limit.weight
    elif isinstance(claim.limit, CpuQuota):
        desired.cpu["cfs_quota_us"] = claim.limit.quota_us
        desired.cpu["cfs_period_us"] = claim.limit.period_us


class CgroupCpu:
    name = "cgroup-cpu"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind not in CPU_KINDS:
            return None
        if not (caps.cgroup_v1_cpu or caps.cgroup_v2_cpu):
            return Decision.refused("no cgroup cpu controller")
        record_cpu(claim, desired)
        mechanism = Mechanism.CGROUP_CPU if caps.cgroup_v1_cpu else Mechanism.CGROUP_V2_CPU
        return Decision.applied(mechanism.value)


def group(name: str, desired: Desired, caps: Capabilities) -> CpuQos | None:
    """Every instance has its group where the controller exists: exec joins it, and a limit
    removed from the flavor is reset to the kernel's default there."""
    if not (caps.cgroup_v1_cpu or caps.cgroup_v2_cpu) or caps.libvirt:
        return None
    return CpuQos(group=name, **desired.cpu, v2=not caps.cgroup_v1_cpu)
