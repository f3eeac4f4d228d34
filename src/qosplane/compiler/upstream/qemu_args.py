"""The QEMU `-drive` option string per disk, with `throttling.*` in libvirt's order.

libvirt src/qemu/qemu_command.c:qemuBuildDiskThrottling (IOTUNE_ADD order): bps-total,
bps-read, bps-write, iops-total, iops-read, iops-write, the six -max variants, iops-size.
Zero values are not emitted on this path (QEMU treats 0 as unlimited anyway).
"""

from __future__ import annotations

from qosplane.compiler.upstream.topology import DiskWiring

# IoTune field -> QEMU option, in libvirt's emission order.
THROTTLING_OPTIONS: tuple[tuple[str, str], ...] = (
    ("total_bytes_per_s", "throttling.bps-total"),
    ("read_bytes_per_s", "throttling.bps-read"),
    ("write_bytes_per_s", "throttling.bps-write"),
    ("total_iops", "throttling.iops-total"),
    ("read_iops", "throttling.iops-read"),
    ("write_iops", "throttling.iops-write"),
    ("total_bytes_per_s_max", "throttling.bps-total-max"),
    ("read_bytes_per_s_max", "throttling.bps-read-max"),
    ("write_bytes_per_s_max", "throttling.bps-write-max"),
    ("total_iops_max", "throttling.iops-total-max"),
    ("read_iops_max", "throttling.iops-read-max"),
    ("write_iops_max", "throttling.iops-write-max"),
    ("size_iops_bytes", "throttling.iops-size"),
)

# QMP block_set_io_throttle argument for each option (used for live re-tuning).
QMP_NAMES: dict[str, str] = {
    "throttling.bps-total": "bps",
    "throttling.bps-read": "bps_rd",
    "throttling.bps-write": "bps_wr",
    "throttling.iops-total": "iops",
    "throttling.iops-read": "iops_rd",
    "throttling.iops-write": "iops_wr",
    "throttling.bps-total-max": "bps_max",
    "throttling.bps-read-max": "bps_rd_max",
    "throttling.bps-write-max": "bps_wr_max",
    "throttling.iops-total-max": "iops_max",
    "throttling.iops-read-max": "iops_rd_max",
    "throttling.iops-write-max": "iops_wr_max",
    "throttling.iops-size": "iops_size",
}


def _escape_commas(text: str) -> str:
    """QEMU option values double their commas."""
    return text.replace(",", ",,")


def throttling_options(disk: DiskWiring) -> list[tuple[str, int]]:
    out = []
    for field, option in THROTTLING_OPTIONS:
        value = getattr(disk.iotune, field)
        if value:
            out.append((option, value))
    return out


def drive_option(disk: DiskWiring) -> str:
    parts = [
        f"file={_escape_commas(disk.source_path)}",
        f"format={disk.source_format}",
        "if=none",
        f"id={disk.drive_id}",
    ]
    if disk.kind == "volume":
        parts.append(f"serial={_escape_commas(disk.volume_id)}")
    parts.append("cache=none")
    if disk.kind == "volume":
        parts.append("aio=native")
    parts += [f"{option}={value}" for option, value in throttling_options(disk)]
    return ",".join(parts)


def qemu_drives(disks: tuple[DiskWiring, ...]) -> dict[str, str]:
    return {disk.target: drive_option(disk) for disk in disks}
