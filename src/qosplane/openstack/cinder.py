"""Cinder QoS specs -> what reaches the hypervisor for one attached volume.

cinder/volume/qos_specs.py (consumer, default back-end) and
cinder/volume/manager.py:VolumeManager._parse_connection_options (per-GB computation),
then nova/virt/libvirt/volume/volume.py:LibvirtBaseVolumeDriver.get_config (the 13 keys
copied into `<iotune>`; anything else is ignored).
"""

from __future__ import annotations

from collections.abc import Mapping

from qosplane.model.disk import IoTune, validate_iotune
from qosplane.model.errors import InvalidInput, parse_int
from qosplane.model.units import Bytes, BytesPerSecond, OpsPerSecond, per_gb_value
from qosplane.model.volume_qos import DEFAULT_CONSUMER, Consumer, VolumeQos

SPEC_MAX_LENGTH = 255

# Nova's tune_opts, mapped to IoTune fields.
FRONT_END_KEYS: dict[str, str] = {
    "read_bytes_sec": "read_bytes_per_s",
    "read_iops_sec": "read_iops",
    "write_bytes_sec": "write_bytes_per_s",
    "write_iops_sec": "write_iops",
    "total_bytes_sec": "total_bytes_per_s",
    "total_iops_sec": "total_iops",
    "read_bytes_sec_max": "read_bytes_per_s_max",
    "write_bytes_sec_max": "write_bytes_per_s_max",
    "total_bytes_sec_max": "total_bytes_per_s_max",
    "read_iops_sec_max": "read_iops_max",
    "write_iops_sec_max": "write_iops_max",
    "total_iops_sec_max": "total_iops_max",
    "size_iops_sec": "size_iops_bytes",
}
PER_GB_BASES = (
    "read_iops_sec",
    "read_bytes_sec",
    "write_iops_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "total_bytes_sec",
)


def parse_consumer(value: object, key: str = "consumer") -> Consumer:
    if value is None:
        return DEFAULT_CONSUMER
    try:
        return Consumer(value)
    except ValueError:
        raise InvalidInput(key, value, "one of " + ", ".join(c.value for c in Consumer)) from None


def validate_specs(specs: Mapping[str, object]) -> dict[str, str]:
    """Cinder stores any key; it only limits lengths (validate_dictionary_string_length)."""
    out: dict[str, str] = {}
    for key, value in specs.items():
        if not isinstance(key, str) or not 1 <= len(key) <= SPEC_MAX_LENGTH:
            raise InvalidInput("specs", key, f"a key of 1 to {SPEC_MAX_LENGTH} characters")
        if value is None or isinstance(value, (bool, list, dict)):
            raise InvalidInput(key, value, "a string or a number")
        text = str(value)
        if len(text) > SPEC_MAX_LENGTH:
            raise InvalidInput(key, text, f"at most {SPEC_MAX_LENGTH} characters")
        out[key] = text
    return out


def check_front_end_specs(specs: Mapping[str, str]) -> None:
    """The keys Nova and Cinder will read must be integers and must not conflict.

    Cinder would only fail at attach time (`int()` raises) and libvirt at guest start; we
    refuse when the spec is written, naming the key. Nothing here depends on the volume
    size, so a 1 GB volume stands in for every size.
    """
    volume_qos(Consumer.FRONT_END, specs, size_gb=1)


def volume_qos(
    consumer: Consumer, specs: Mapping[str, str], size_gb: int, name: str = ""
) -> VolumeQos:
    """What one volume of `size_gb` gets at attach time from a QoS spec."""
    checked = validate_specs(specs)
    per_gb_keys = tuple(sorted(k for k in checked if k.endswith(("_per_gb", "_per_gb_min"))))
    if not consumer.reaches_host:
        return VolumeQos(
            consumer=consumer,
            name=name,
            specs=tuple(sorted(checked.items())),
            per_gb_keys=per_gb_keys,
            ignored_keys=tuple(sorted(checked)),
        )
    work: dict[str, int | str] = {}
    for key, text in checked.items():
        # A *_per_gb_min is read only beside its *_per_gb (Cinder pops it inside that
        # branch); alone it passes through untouched and Nova ignores it.
        per_gb_base = key.removesuffix("_per_gb")
        min_base = key.removesuffix("_per_gb_min")
        if (
            key in FRONT_END_KEYS
            or (key.endswith("_per_gb") and per_gb_base in PER_GB_BASES)
            or (key.endswith("_per_gb_min") and f"{min_base}_per_gb" in checked)
        ):
            work[key] = parse_int(key, text, minimum=0)
        else:
            work[key] = text
    for base in PER_GB_BASES:
        per_gb_key = f"{base}_per_gb"
        if per_gb_key not in work:
            continue
        floor = parse_int(f"{base}_per_gb_min", work.pop(f"{base}_per_gb_min", 0), minimum=0)
        cap_raw = work.pop(f"{base}_max", None)
        cap = None if cap_raw is None else parse_int(f"{base}_max", cap_raw, minimum=0)
        per_gb = parse_int(per_gb_key, work.pop(per_gb_key), minimum=0)
        work[base] = per_gb_value(per_gb, size_gb, floor=floor, cap=cap)
    ints = {
        key: parse_int(key, value, minimum=0)
        for key, value in work.items()
        if key in FRONT_END_KEYS
    }
    ignored = tuple(sorted(key for key in work if key not in FRONT_END_KEYS))
    return VolumeQos(
        consumer=consumer,
        iotune=_tune_from_ints(ints),
        name=name,
        specs=tuple(sorted(checked.items())),
        per_gb_keys=per_gb_keys,
        ignored_keys=ignored,
    )


def _tune_from_ints(values: Mapping[str, int]) -> IoTune:
    kwargs: dict[str, int] = {}
    for key, value in values.items():
        field = FRONT_END_KEYS.get(key)
        if field is not None:
            kwargs[field] = value
    tune = IoTune(
        read_bytes_per_s=_b(kwargs.get("read_bytes_per_s")),
        read_iops=_o(kwargs.get("read_iops")),
        write_bytes_per_s=_b(kwargs.get("write_bytes_per_s")),
        write_iops=_o(kwargs.get("write_iops")),
        total_bytes_per_s=_b(kwargs.get("total_bytes_per_s")),
        total_iops=_o(kwargs.get("total_iops")),
        read_bytes_per_s_max=_b(kwargs.get("read_bytes_per_s_max")),
        write_bytes_per_s_max=_b(kwargs.get("write_bytes_per_s_max")),
        total_bytes_per_s_max=_b(kwargs.get("total_bytes_per_s_max")),
        read_iops_max=_o(kwargs.get("read_iops_max")),
        write_iops_max=_o(kwargs.get("write_iops_max")),
        total_iops_max=_o(kwargs.get("total_iops_max")),
        size_iops_bytes=None
        if "size_iops_bytes" not in kwargs
        else Bytes(kwargs["size_iops_bytes"]),
    )
    validate_iotune(tune, {field: key for key, field in FRONT_END_KEYS.items()})
    return tune


def _b(value: int | None) -> BytesPerSecond | None:
    return None if value is None else BytesPerSecond(value)


def _o(value: int | None) -> OpsPerSecond | None:
    return None if value is None else OpsPerSecond(value)
