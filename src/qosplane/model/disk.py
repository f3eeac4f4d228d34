"""Disk I/O limits: the `<iotune>` vocabulary in canonical units."""

from __future__ import annotations

from dataclasses import dataclass, fields

from qosplane.model.errors import InvalidInput
from qosplane.model.units import Bytes, BytesPerSecond, OpsPerSecond

# QEMU util/throttle.c THROTTLE_VALUE_MAX and libvirt QEMU_BLOCK_IOTUNE_MAX.
IOTUNE_VALUE_MAX = 1_000_000_000_000_000


@dataclass(frozen=True, slots=True)
class IoTune:
    """The limits of one disk. None = not set; 0 = set to zero (QEMU: unlimited).

    Field order is Nova's `<iotune>` element order (LibvirtConfigGuestDisk._format_iotune).
    """

    read_bytes_per_s: BytesPerSecond | None = None
    read_iops: OpsPerSecond | None = None
    write_bytes_per_s: BytesPerSecond | None = None
    write_iops: OpsPerSecond | None = None
    total_bytes_per_s: BytesPerSecond | None = None
    total_iops: OpsPerSecond | None = None
    read_bytes_per_s_max: BytesPerSecond | None = None
    write_bytes_per_s_max: BytesPerSecond | None = None
    total_bytes_per_s_max: BytesPerSecond | None = None
    read_iops_max: OpsPerSecond | None = None
    write_iops_max: OpsPerSecond | None = None
    total_iops_max: OpsPerSecond | None = None
    size_iops_bytes: Bytes | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in IOTUNE_FIELDS)

    def items(self) -> list[tuple[str, int]]:
        """The set fields, in Nova's order."""
        out: list[tuple[str, int]] = []
        for name in IOTUNE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out.append((name, value))
        return out


# Field names in declaration order, computed once: dataclasses.fields() is slow on a hot path.
IOTUNE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(IoTune))


_EXCLUSIVE = (
    ("total_bytes_per_s", ("read_bytes_per_s", "write_bytes_per_s")),
    ("total_iops", ("read_iops", "write_iops")),
    ("total_bytes_per_s_max", ("read_bytes_per_s_max", "write_bytes_per_s_max")),
    ("total_iops_max", ("read_iops_max", "write_iops_max")),
)

_MAX_OF = (
    ("read_bytes_per_s_max", "read_bytes_per_s"),
    ("write_bytes_per_s_max", "write_bytes_per_s"),
    ("total_bytes_per_s_max", "total_bytes_per_s"),
    ("read_iops_max", "read_iops"),
    ("write_iops_max", "write_iops"),
    ("total_iops_max", "total_iops"),
)


def validate_iotune(tune: IoTune, names: dict[str, str]) -> None:
    """The checks libvirt and QEMU apply before a guest starts, raised at declaration time.

    `names` maps field names to the keys the user wrote, so the error names their key.
    libvirt qemuCheckDiskConfigBlkdeviotune; QEMU util/throttle.c:throttle_is_valid.
    """

    def key(field: str) -> str:
        return names.get(field, field)

    for field, value in tune.items():
        if value > IOTUNE_VALUE_MAX:
            raise InvalidInput(key(field), value, f"an integer from 0 to {IOTUNE_VALUE_MAX}")
    for total, parts in _EXCLUSIVE:
        total_value = getattr(tune, total)
        for part in parts:
            part_value = getattr(tune, part)
            if total_value and part_value:
                raise InvalidInput(
                    key(total),
                    total_value,
                    f"either {key(total)} or {key(part)}, not both",
                    "total and read/write limits cannot be set at the same time",
                )
    for high, avg in _MAX_OF:
        high_value = getattr(tune, high)
        if not high_value:
            continue
        avg_value = getattr(tune, avg)
        if not avg_value:
            raise InvalidInput(
                key(high), high_value, f"{key(avg)} set as well", "a burst limit needs its average"
            )
        if high_value < avg_value:
            raise InvalidInput(
                key(high),
                high_value,
                f"an integer >= {key(avg)} ({avg_value})",
                "a burst limit below its average",
            )
    if tune.size_iops_bytes and not (tune.total_iops or tune.read_iops or tune.write_iops):
        raise InvalidInput(
            key("size_iops_bytes"),
            tune.size_iops_bytes,
            "an IOPS limit set as well",
            "an I/O size is meaningless without an IOPS limit",
        )
