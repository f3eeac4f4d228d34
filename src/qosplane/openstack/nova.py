"""Nova flavor extra specs: the `quota:*` catalogue of the libvirt driver, validated as Nova does.

nova/api/validation/extra_specs/quota.py registers the validators; from microversion 2.86 an
unknown key in the `quota:` namespace is refused. Values are parsed with `int()`
(nova/api/validation/extra_specs/base.py:_validate_int, bounds inclusive). Keys and values are
limited to 255 characters (nova/api/validation/parameter_types.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qosplane.model.disk import IoTune, validate_iotune
from qosplane.model.errors import InvalidInput, parse_int
from qosplane.model.flavor import CpuTune, Flavor, FlavorQos, VifLimit
from qosplane.model.units import (
    CFS_PERIOD_MAX_US,
    CFS_QUOTA_MAX_US,
    CGROUP_V1_SHARES_MAX,
    BytesPerSecond,
    Kibibytes,
    KilobytesPerSecond,
    Microseconds,
    OpsPerSecond,
    kibibytes_to_bytes,
    kilobytes_per_s_to_bytes_per_s,
)

EXTRA_SPEC_MAX_LENGTH = 255
QUOTA_PREFIX = "quota:"


@dataclass(frozen=True, slots=True)
class _SpecRule:
    minimum: int | None
    choices: tuple[str, ...] = ()
    libvirt: bool = True
    maximum: int | None = None


_INT_MIN0 = _SpecRule(minimum=0)

# Upper bounds Nova does not check (its validator has min 0 only,
# nova/api/validation/extra_specs/quota.py) but no host can honour, so qosplane refuses
# them when written rather than storing a plan every pass fails on (README: deviations).
# libvirt refuses shares above the cgroup v1 maximum (vircgroupv1.c,
# VIR_CGROUPV1_CPU_SHARES_MAX) and a CFS period or quota outside the kernel's range
# (vircgroup.h, VIR_CGROUP_CPU_PERIOD_MIN/MAX, VIR_CGROUP_CPU_QUOTA_MAX; a negative quota
# is "no limit"). A `<bandwidth>` average or peak in KB/s above UINT32_MAX is 34 Tbit/s;
# a burst in KiB must fit tc's 32-bit byte count (iproute2 tc/q_htb.c, `burst`).
VIF_RATE_MAX_KB_PER_S = 2**32 - 1
VIF_BURST_MAX_KIB = (2**32 - 1) // 1024

# The libvirt driver's keys (imagebackend.Image.disk_qos, designer.set_vif_bandwidth_config,
# driver._update_guest_cputune).
LIBVIRT_QUOTA_KEYS: dict[str, _SpecRule] = {
    "quota:cpu_shares": _SpecRule(minimum=0, maximum=CGROUP_V1_SHARES_MAX),
    # Nova's minimum stays: 0 is libvirt's "not set"; only the maximum is added.
    "quota:cpu_period": _SpecRule(minimum=0, maximum=CFS_PERIOD_MAX_US),
    "quota:cpu_quota": _SpecRule(minimum=None, maximum=CFS_QUOTA_MAX_US),
    **{
        f"quota:disk_{op}_{unit}_sec": _INT_MIN0
        for op in ("read", "write", "total")
        for unit in ("bytes", "iops")
    },
    **{
        f"quota:vif_{way}_{part}": _SpecRule(
            minimum=0, maximum=VIF_BURST_MAX_KIB if part == "burst" else VIF_RATE_MAX_KB_PER_S
        )
        for way in ("inbound", "outbound")
        for part in ("average", "peak", "burst")
    },
}

# Keys Nova accepts in the quota namespace that only the VMware driver reads.
_VMWARE_QUOTA_KEYS: dict[str, _SpecRule] = {}
for _res in ("cpu", "memory", "disk_io", "vif"):
    _VMWARE_QUOTA_KEYS[f"quota:{_res}_limit"] = _SpecRule(minimum=0, libvirt=False)
    _VMWARE_QUOTA_KEYS[f"quota:{_res}_reservation"] = _SpecRule(minimum=None, libvirt=False)
    _VMWARE_QUOTA_KEYS[f"quota:{_res}_shares_level"] = _SpecRule(
        minimum=None, choices=("custom", "high", "normal", "low"), libvirt=False
    )
    _VMWARE_QUOTA_KEYS[f"quota:{_res}_shares_share"] = _SpecRule(minimum=0, libvirt=False)

QUOTA_KEYS: dict[str, _SpecRule] = {**LIBVIRT_QUOTA_KEYS, **_VMWARE_QUOTA_KEYS}

_DISK_FIELDS = {
    "quota:disk_read_bytes_sec": "read_bytes_per_s",
    "quota:disk_read_iops_sec": "read_iops",
    "quota:disk_write_bytes_sec": "write_bytes_per_s",
    "quota:disk_write_iops_sec": "write_iops",
    "quota:disk_total_bytes_sec": "total_bytes_per_s",
    "quota:disk_total_iops_sec": "total_iops",
}


def validate_extra_spec(key: str, value: object, strict: bool = True) -> str:
    """One extra spec as Nova's API checks it; returns the value as Nova stores it (a string).

    strict=True is microversion >= 2.86: unknown `quota:` keys are refused. Keys outside the
    `quota:` namespace are stored unchecked, as Nova does for namespaces it does not know.
    """
    if not isinstance(key, str) or not 1 <= len(key) <= EXTRA_SPEC_MAX_LENGTH:
        raise InvalidInput("extra_specs", key, f"a key of 1 to {EXTRA_SPEC_MAX_LENGTH} characters")
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise InvalidInput(key, value, "a string or a number")
    text = str(value)
    if len(text) > EXTRA_SPEC_MAX_LENGTH:
        raise InvalidInput(key, text, f"at most {EXTRA_SPEC_MAX_LENGTH} characters")
    if not key.startswith(QUOTA_PREFIX):
        return text
    rule = QUOTA_KEYS.get(key)
    if rule is None:
        if strict:
            raise InvalidInput(
                key,
                text,
                "one of " + ", ".join(sorted(QUOTA_KEYS)),
                "not a valid extra spec in the quota namespace",
            )
        return text
    if rule.choices:
        if text not in rule.choices:
            raise InvalidInput(key, text, "one of " + ", ".join(rule.choices))
        return text
    parse_int(key, text, minimum=rule.minimum, maximum=rule.maximum)
    return text


def validate_extra_specs(specs: Mapping[str, object], strict: bool = True) -> dict[str, str]:
    return {key: validate_extra_spec(key, value, strict) for key, value in specs.items()}


def flavor_qos(specs: Mapping[str, str], strict: bool = True) -> FlavorQos:
    """The QoS the libvirt driver derives from a flavor's extra specs."""
    checked = validate_extra_specs(specs, strict)
    ints: dict[str, int] = {}
    ignored: list[str] = []
    for key, text in checked.items():
        if key in LIBVIRT_QUOTA_KEYS:
            ints[key] = parse_int(key, text)
        elif key.startswith(QUOTA_PREFIX):
            ignored.append(key)
    cpu = CpuTune(
        shares=ints.get("quota:cpu_shares"),
        quota_us=_opt_us(ints.get("quota:cpu_quota")),
        period_us=_opt_us(ints.get("quota:cpu_period")),
    )
    disk_values = {field: ints[key] for key, field in _DISK_FIELDS.items() if key in ints}
    disk = IoTune(
        read_bytes_per_s=_opt_bps(disk_values.get("read_bytes_per_s")),
        read_iops=_opt_ops(disk_values.get("read_iops")),
        write_bytes_per_s=_opt_bps(disk_values.get("write_bytes_per_s")),
        write_iops=_opt_ops(disk_values.get("write_iops")),
        total_bytes_per_s=_opt_bps(disk_values.get("total_bytes_per_s")),
        total_iops=_opt_ops(disk_values.get("total_iops")),
    )
    validate_iotune(disk, {field: key for key, field in _DISK_FIELDS.items()})
    return FlavorQos(
        cpu=cpu,
        disk=disk,
        vif_inbound=_vif_limit(ints, "inbound"),
        vif_outbound=_vif_limit(ints, "outbound"),
        ignored_keys=tuple(sorted(ignored)),
    )


def make_flavor(
    name: str,
    vcpus: int,
    ram_mb: int,
    disk_gb: int,
    extra_specs: Mapping[str, object],
    ephemeral_gb: int = 0,
    swap_mb: int = 0,
    flavor_id: str = "",
    strict: bool = True,
) -> Flavor:
    specs = validate_extra_specs(extra_specs, strict)
    return Flavor(
        name=name,
        vcpus=parse_int("vcpus", vcpus, minimum=1),
        ram_mb=parse_int("ram", ram_mb, minimum=1),
        disk_gb=parse_int("disk", disk_gb, minimum=0),
        ephemeral_gb=parse_int("ephemeral", ephemeral_gb, minimum=0),
        swap_mb=parse_int("swap", swap_mb, minimum=0),
        id=flavor_id,
        extra_specs=specs,
        qos=flavor_qos(specs, strict),
    )


def _vif_limit(ints: Mapping[str, int], way: str) -> VifLimit | None:
    """None when no average is set: libvirt drops a peak or burst without an average
    (nova config.py writes <inbound> only when its average is not None)."""
    average = ints.get(f"quota:vif_{way}_average")
    if average is None:
        return None
    peak = ints.get(f"quota:vif_{way}_peak")
    burst = ints.get(f"quota:vif_{way}_burst")
    return VifLimit(
        average_bytes_per_s=kilobytes_per_s_to_bytes_per_s(KilobytesPerSecond(average)),
        peak_bytes_per_s=None
        if peak is None
        else kilobytes_per_s_to_bytes_per_s(KilobytesPerSecond(peak)),
        burst_bytes=None if burst is None else kibibytes_to_bytes(Kibibytes(burst)),
    )


def dropped_vif_keys(specs: Mapping[str, str]) -> list[str]:
    """peak/burst keys Nova silently drops because their direction has no average."""
    dropped = []
    for way in ("inbound", "outbound"):
        if f"quota:vif_{way}_average" in specs:
            continue
        dropped += [
            f"quota:vif_{way}_{part}"
            for part in ("peak", "burst")
            if f"quota:vif_{way}_{part}" in specs
        ]
    return dropped


def _opt_us(value: int | None) -> Microseconds | None:
    return None if value is None else Microseconds(value)


def _opt_bps(value: int | None) -> BytesPerSecond | None:
    return None if value is None else BytesPerSecond(value)


def _opt_ops(value: int | None) -> OpsPerSecond | None:
    return None if value is None else OpsPerSecond(value)
