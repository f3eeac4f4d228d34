"""Measured vs configured: the expected value each limit should produce and the band a
measurement must fall in (issue 4's bands: throughput within 5% of the TCP goodput at
>= 10 Mbit/s, CPU ratio within 5%, disk within 3%; DSCP exact)."""

from __future__ import annotations

from dataclasses import replace

from qosplane.model.report import Verdict
from qosplane.model.units import BitsPerSecond, PacketsPerSecond, tcp_goodput_bits_per_s

TEN_MBIT = 10_000_000


def throughput_tolerance(rate_bits_per_s: int) -> float:
    """5% at 10 Mbit/s and above; 10% below, where a few frames of burst weigh more."""
    return 0.05 if rate_bits_per_s >= TEN_MBIT else 0.10


def judge_throughput(
    device: str,
    direction: str,
    rate_bits_per_s: BitsPerSecond,
    measured_bits_per_s: float,
    mtu_bytes: int = 1500,
    method: str = "",
) -> Verdict:
    expected = tcp_goodput_bits_per_s(rate_bits_per_s, mtu_bytes)
    tolerance = throughput_tolerance(rate_bits_per_s)
    return Verdict(
        "bandwidth",
        device,
        direction,
        f"{rate_bits_per_s} bit/s",
        float(expected),
        measured_bits_per_s,
        "bit/s",
        tolerance,
        abs(measured_bits_per_s - expected) <= tolerance * expected,
        method,
    )


def judge_ratio(
    kind: str, device: str, configured: str, expected: float, measured: float, method: str = ""
) -> Verdict:
    return Verdict(
        kind,
        device,
        "",
        configured,
        expected,
        measured,
        "ratio",
        0.05,
        abs(measured - expected) <= 0.05 * expected,
        method,
    )


PACKET_RATE_TOLERANCE = 0.05  # issue 13: packets per second received, within 5%


def judge_packet_rate(
    device: str,
    direction: str,
    rate_packets_per_s: PacketsPerSecond,
    measured: float,
    method: str,
    expected_packets_per_s: PacketsPerSecond | None = None,
) -> Verdict:
    """A packet limit lets its rate through, whatever is offered above it; or less, when a
    bandwidth limit on the same direction binds first (`expected_packets_per_s`)."""
    expected = rate_packets_per_s if expected_packets_per_s is None else expected_packets_per_s
    return Verdict(
        "packet_rate",
        device,
        direction,
        f"{rate_packets_per_s} packet/s",
        float(expected),
        measured,
        "packet/s",
        PACKET_RATE_TOLERANCE,
        abs(measured - expected) <= PACKET_RATE_TOLERANCE * expected,
        method,
    )


DISK_TOLERANCE = 0.03


def judge_disk(
    kind: str, device: str, direction: str, configured: int, measured: float, unit: str, method: str
) -> Verdict:
    """QEMU's throttle lets a bucket of a tenth of a second through at once, so over a
    5 s run the rate may come out up to 2% high; the band is 3%."""
    return Verdict(
        kind,
        device,
        direction,
        f"{configured} {unit}",
        float(configured),
        measured,
        unit,
        DISK_TOLERANCE,
        abs(measured - configured) <= DISK_TOLERANCE * configured,
        method,
    )


def judge_exact(
    kind: str, device: str, direction: str, expected: int, measured: int, unit: str, method: str
) -> Verdict:
    return Verdict(
        kind,
        device,
        direction,
        f"{expected} {unit}",
        float(expected),
        float(measured),
        unit,
        0.0,
        expected == measured,
        method,
    )


CAPACITY_HEADROOM = 1.2  # issue 12: a path must carry 1.2 times the limit to judge it


def judge_capacity(verdict: Verdict, capacity: float) -> Verdict:
    """`verdict` with what the path carried without the limit (in the verdict's unit).
    A host (a busy CPU, a TCG guest, a slow datapath) can only hold a reading down, so a
    reading above the band fails whatever the path carries; one in or below the band on a
    path that cannot carry CAPACITY_HEADROOM times the expected value may be the host's,
    not the limit's: inconclusive, never pass or fail."""
    above = not verdict.passed and verdict.measured > verdict.expected
    short = not above and capacity < CAPACITY_HEADROOM * verdict.expected
    return replace(
        verdict,
        capacity=capacity,
        inconclusive=short,
        passed=verdict.passed and not short,
    )
