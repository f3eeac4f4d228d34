"""An attached volume exported through qemu-storage-daemon, its front-end limits on the
export's throttle-group (Cinder's per-GB values already resolved by the compiler)."""

from __future__ import annotations

from qosplane.compiler.enforcement.base import Claim, Decision, Desired
from qosplane.model.host_state import Capabilities, Mechanism, VolumeQos
from qosplane.model.plan import DiskBytes, DiskIops


class QemuThrottle:
    name = "qemu-storage-daemon"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.device not in desired.volumes or not claim.kind.startswith("disk"):
            return None
        if not caps.qemu_storage_daemon:
            return Decision.refused("no qemu-storage-daemon on this host")
        if isinstance(claim.limit, DiskBytes):
            option, value = f"x-bps-{claim.direction}", claim.limit.bytes_per_s
        elif isinstance(claim.limit, DiskIops):
            option, value = f"x-iops-{claim.direction}", claim.limit.iops
        else:
            return None
        desired.throttles.setdefault(claim.device, {})[option] = value
        return Decision.applied(Mechanism.QEMU_THROTTLE.value)


def volumes(desired: Desired, caps: Capabilities) -> tuple[VolumeQos, ...]:
    if not caps.qemu_storage_daemon:
        return ()
    return tuple(
        VolumeQos(
            desired.volumes[t].id,
            t,
            desired.volumes[t].size_gb,
            tuple(sorted(desired.throttles.get(t, {}).items())),
        )
        for t in sorted(desired.volumes)
    )
