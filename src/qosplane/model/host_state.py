"""What a host enforces, in the agent's own terms: desired (compiled from a plan for this
host's capabilities) and observed (read back from the kernel) share these types, so drift
is a plain comparison.

Directions are guest-relative, as everywhere in the model: `to_instance` is enforced on
the host-side device's egress (its root qdisc), `from_instance` on its ingress.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qosplane.model.units import BitsPerSecond, Bytes


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the probe found this kernel can do (host/probe.py tries each once)."""

    htb: bool = True
    pfifo: bool = True
    ifb_mirred: bool = True  # ingress qdisc + u32 + mirred redirect to an ifb device
    tc_police: bool = False  # act_police
    sfq: bool = False
    nft_bridge: bool = False  # nftables bridge-family forward chains (DSCP marking)
    cgroup_v1_cpu: bool = False
    cgroup_v2: bool = False
    qemu_storage_daemon: bool = False  # throttled NBD exports of volumes


class Mechanism(enum.Enum):
    SHAPE_HTB = "htb shaper on the device"  # to-instance
    SHAPE_IFB = "ifb redirect + htb shaper"  # from-instance, shapes (queues) instead of policing
    POLICE_TC = "tc police"  # from-instance, drops
    MARK_NFT = "nftables bridge forward, ip dscp set"
    CGROUP_CPU = "cgroup cpu controller"
    QEMU_THROTTLE = "qemu-storage-daemon throttle-group, NBD export"


@dataclass(frozen=True, slots=True)
class Shaper:
    """htb root 1: with one class 1:1 (default) and a pfifo leaf 2:."""

    rate_bits_per_s: BitsPerSecond
    ceil_bits_per_s: BitsPerSecond
    burst_bytes: Bytes


@dataclass(frozen=True, slots=True)
class DeviceQos:
    device: str  # host-side interface, tap + first 11 characters of the port id
    to_instance: Shaper | None = None
    from_instance: Shaper | None = None  # applied on `ifb`, fed by a mirred redirect
    dscp: int | None = None  # marks what the instance sends

    @property
    def ifb(self) -> str:
        """The ifb device for from-instance shaping: `ifb` + the tap's port-id part (14
        characters, under IFNAMSIZ)."""
        return "ifb" + self.device.removeprefix("tap")


@dataclass(frozen=True, slots=True)
class ObservedDevice:
    """What the kernel shows for one host-side device, in the desired state's terms."""

    qos: DeviceQos
    exists: bool = True
    redirect_to: str | None = None  # the ifb its ingress filter redirects to, if any
    root_htb: bool = False  # an htb root qdisc 1: is there (with or without our class)
    ingress: bool = False  # an ingress qdisc is there (with or without our filter)
    ifb_root_htb: bool = False
    other_qdiscs: tuple[str, ...] = ()  # qdiscs qosplane does not write (sfq, fq_codel...)


CGROUP_V1_DEFAULT_SHARES = 1024  # the kernel's cpu.shares for a new group
CFS_DEFAULT_PERIOD_US = 100_000  # the kernel's cpu.cfs_period_us


@dataclass(frozen=True, slots=True)
class CpuQos:
    group: str  # the instance's cgroup, relative to the agent's cgroup root
    shares: int | None = None  # cgroup v1 cpu.shares
    cfs_quota_us: int | None = None
    cfs_period_us: int | None = None


@dataclass(frozen=True, slots=True)
class VolumeQos:
    volume_id: str
    device: str  # the guest's target, vdb
    size_gb: int
    limits: tuple[tuple[str, int], ...] = ()  # QEMU throttle-group keys: x-iops-read=100

    def limits_map(self) -> dict[str, int]:
        return dict(self.limits)


@dataclass(frozen=True, slots=True)
class InstanceQos:
    name: str  # instance-0000002a
    devices: tuple[DeviceQos, ...] = ()
    cpu: CpuQos | None = None
    volumes: tuple[VolumeQos, ...] = ()


class Outcome(enum.Enum):
    APPLIED = "applied"
    NOT_ENFORCEABLE = "not enforceable here"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What happened to one effective limit of the plan on this host."""

    kind: str  # bandwidth, dscp, cpu_shares, ...
    device: str
    direction: str
    outcome: Outcome
    mechanism: str = ""
    polices: bool = False  # True: excess is dropped; False: queued (shaped)
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "device": self.device,
            "direction": self.direction,
            "status": self.outcome.value,
            "mechanism": self.mechanism,
            "polices": self.polices,
            "reason": self.reason,
        }
