"""Nova flavors and the QoS their `quota:*` extra specs declare, in canonical units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from qosplane.model.disk import IoTune
from qosplane.model.units import Bytes, BytesPerSecond, Microseconds


@dataclass(frozen=True, slots=True)
class CpuTune:
    """`<cputune>` as Nova writes it. Quota and period apply per vCPU thread (libvirt)."""

    shares: int | None = None
    quota_us: Microseconds | None = None
    period_us: Microseconds | None = None


@dataclass(frozen=True, slots=True)
class VifLimit:
    """One direction of a flavor VIF quota: libvirt's average/peak/burst.

    Kept in libvirt's own resolution (1000 bytes/s, 1024 bytes) so that the compiled XML
    reproduces what the operator typed; the canonical fields convert on demand.
    """

    average_bytes_per_s: BytesPerSecond
    peak_bytes_per_s: BytesPerSecond | None = None
    burst_bytes: Bytes | None = None


@dataclass(frozen=True, slots=True)
class FlavorQos:
    cpu: CpuTune = field(default_factory=CpuTune)
    disk: IoTune = field(default_factory=IoTune)
    vif_inbound: VifLimit | None = None  # to the guest
    vif_outbound: VifLimit | None = None  # from the guest
    # quota:* keys Nova accepts that the libvirt driver ignores (VMware-only keys).
    ignored_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    id: str = ""
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    qos: FlavorQos = field(default_factory=FlavorQos)
