"""Every conversion in qosplane.model.units against the upstream examples and formulas.

Numbers come from /work/shared/reference/upstream-mapping.md; each test names the
upstream source it mirrors. The properties check the formulas over the full integer
ranges upstream accepts, not just the examples.
"""

from __future__ import annotations

import decimal
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.model import units as u
from qosplane.model.units import (
    Bits,
    BitsPerSecond,
    Bytes,
    Kibibytes,
    Kilobits,
    KilobitsPerSecond,
    KilobytesPerSecond,
    Kilopackets,
    KilopacketsPerSecond,
    MegabitsPerSecond,
)

# Neutron rates/bursts are [0, 2**31 - 1] (neutron_lib/api/definitions/qos.py).
NEUTRON_MAX = 2**31 - 1
# libvirt <bandwidth> attributes are unsigned long long; the quantum examples go up to
# UINT_MAX, and OVS clamps its columns to UINT32_MAX (vswitchd/bridge.c).
UINT_MAX = 2**32 - 1
# QEMU THROTTLE_VALUE_MAX / libvirt QEMU_BLOCK_IOTUNE_MAX.
IOTUNE_MAX = 10**15

neutron_ints = st.integers(min_value=0, max_value=NEUTRON_MAX)
uint32s = st.integers(min_value=0, max_value=UINT_MAX)
big = st.integers(min_value=0, max_value=2**64)
SETTINGS = settings(max_examples=200)


# --- a tiny iproute2 parser, the oracle for the tc text forms ---------------------------
# iproute2 lib/utils_math.c:get_rate (rate suffixes, value * scale / 8 = bytes/s) and
# get_size64 (size suffixes). Only the suffixes libvirt, OVS and Neutron emit.
_TC_RATE_BITS = {"bit": 1, "kbit": 1000, "mbit": 10**6, "bps": 8, "kbps": 8000, "mbps": 8 * 10**6}
_TC_SIZE_BYTES = {"b": 1, "": 1, "k": 1024, "kb": 1024, "mb": 1024**2, "kbit": 128}


def tc_rate_to_bits_per_s(text: str) -> int:
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", text)
    assert match is not None, text
    number, suffix = match.groups()
    if not suffix:  # a bare number is bits/s in iproute2
        return int(number)
    return int(number) * _TC_RATE_BITS[suffix.lower()]


def tc_size_to_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", text)
    assert match is not None, text
    number, suffix = match.groups()
    return int(number) * _TC_SIZE_BYTES[suffix.lower()]


# --- libvirt <bandwidth> ----------------------------------------------------------------


def test_libvirt_average_32768_kbps_is_262144_kbit() -> None:
    # upstream-mapping.md section 1 worked example: quota:vif_inbound_average=32768 ->
    # `tc class ... rate 32768kbps`, printed by tc as `rate 262144Kbit`.
    bits = u.kilobytes_per_s_to_bits_per_s(KilobytesPerSecond(32768))
    assert bits == 262_144_000
    assert u.bits_per_s_to_kilobits_per_s(bits) == 262_144
    assert u.kilobytes_per_s_to_bytes_per_s(KilobytesPerSecond(32768)) == 32_768_000


def test_libvirt_burst_131072_kib_is_128_mib() -> None:
    # Same worked example: burst=131072 -> `burst 131072kb` = 134217728 bytes (`128Mb`).
    assert u.kibibytes_to_bytes(Kibibytes(131072)) == 134_217_728
    assert u.bytes_to_kibibytes(Bytes(134_217_728)) == 131072


@pytest.mark.parametrize(
    ("average", "quantum"),
    # libvirt src/util/virnetdevbandwidth.c:virNetDevBandwidthCmdAddOptimalQuantum examples
    [(1024, 87), (1, 1), (32768, 2796), (4294967295, 366503875), (0, 1), (11, 1), (12, 1)],
)
def test_libvirt_htb_quantum_examples(average: int, quantum: int) -> None:
    assert u.libvirt_htb_quantum_bytes(KilobytesPerSecond(average)) == quantum


def test_libvirt_htb_quantum_first_value_above_one() -> None:
    # average*1024/8/1500 reaches 2 at average = 24 (24*128 = 3072 >= 3000), 1 below.
    assert u.libvirt_htb_quantum_bytes(KilobytesPerSecond(23)) == 1
    assert u.libvirt_htb_quantum_bytes(KilobytesPerSecond(24)) == 2


@SETTINGS
@given(big)
def test_libvirt_htb_quantum_formula(average: int) -> None:
    # C: r2q = average * 1024 / 8 / mtu; if (!r2q) r2q = 1 (integer division, mtu 1500).
    expected = ((average * 1024) // 8) // 1500
    assert u.libvirt_htb_quantum_bytes(KilobytesPerSecond(average)) == max(1, expected)


@SETTINGS
@given(big, big)
def test_libvirt_htb_quantum_is_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert u.libvirt_htb_quantum_bytes(KilobytesPerSecond(low)) <= u.libvirt_htb_quantum_bytes(
        KilobytesPerSecond(high)
    )


def test_libvirt_default_police_burst_caps_at_uint_max_over_1024() -> None:
    # libvirt virNetDevBandwidthSet: burst = MIN(rx.average, UINT_MAX/1024) = 4194303 KiB.
    assert u.LIBVIRT_POLICE_BURST_CAP_KIB == 4194303
    assert u.libvirt_default_police_burst(KilobytesPerSecond(32768)) == 32768
    assert u.libvirt_default_police_burst(KilobytesPerSecond(4194303)) == 4194303
    assert u.libvirt_default_police_burst(KilobytesPerSecond(4194304)) == 4194303
    assert u.libvirt_default_police_burst(KilobytesPerSecond(0)) == 0


@SETTINGS
@given(big)
def test_libvirt_default_police_burst_formula(average: int) -> None:
    assert u.libvirt_default_police_burst(KilobytesPerSecond(average)) == min(
        average, UINT_MAX // 1024
    )


@SETTINGS
@given(big)
def test_kilobytes_per_s_conversions(value: int) -> None:
    kbps = KilobytesPerSecond(value)
    bits = u.kilobytes_per_s_to_bits_per_s(kbps)
    assert bits == value * 8000
    assert u.kilobytes_per_s_to_bytes_per_s(kbps) == value * 1000
    # The two canonical forms agree: bytes/s = bits/s / 8.
    assert u.bits_per_s_to_bytes_per_s(bits) == u.kilobytes_per_s_to_bytes_per_s(kbps)
    assert u.bits_per_s_to_kilobytes_per_s(bits) == value


@SETTINGS
@given(big)
def test_bits_per_s_to_kilobytes_per_s_rounds_down(bits: int) -> None:
    kbps = u.bits_per_s_to_kilobytes_per_s(BitsPerSecond(bits))
    back = u.kilobytes_per_s_to_bits_per_s(kbps)
    assert back <= bits < back + 8000


def test_bits_per_s_to_kilobytes_per_s_examples() -> None:
    assert u.bits_per_s_to_kilobytes_per_s(BitsPerSecond(7999)) == 0
    assert u.bits_per_s_to_kilobytes_per_s(BitsPerSecond(8000)) == 1
    assert u.bits_per_s_to_kilobytes_per_s(BitsPerSecond(15999)) == 1


@SETTINGS
@given(big)
def test_kibibytes_round_trip(value: int) -> None:
    assert u.kibibytes_to_bytes(Kibibytes(value)) == value * 1024
    assert u.bytes_to_kibibytes(u.kibibytes_to_bytes(Kibibytes(value))) == value


@SETTINGS
@given(big)
def test_bytes_to_kibibytes_rounds_down(value: int) -> None:
    kib = u.bytes_to_kibibytes(Bytes(value))
    assert kib * 1024 <= value < (kib + 1) * 1024


# --- libvirt on OVS ports ---------------------------------------------------------------


def test_libvirt_ovs_examples() -> None:
    # libvirt virnetdevopenvswitch.c: KIBIBYTE_TO_BITS (x8192) for the queue burst,
    # VIR_NETDEV_RX_TO_OVS (x8) for ingress_policing_rate/burst.
    assert u.libvirt_ovs_kib_to_bits(Kibibytes(131072)) == 1_073_741_824
    assert u.libvirt_kilobytes_per_s_to_ovs_policing_kbit(KilobytesPerSecond(32768)) == 262144
    assert u.libvirt_kib_to_ovs_policing_kbit(Kibibytes(131072)) == 1_048_576


@SETTINGS
@given(uint32s)
def test_libvirt_ovs_conversions_land_on_the_same_bytes(value: int) -> None:
    # Whatever path libvirt takes, OVS must end up with the bytes libvirt meant.
    kib = Kibibytes(value)
    kbyte_rate = KilobytesPerSecond(value)
    assert u.libvirt_ovs_kib_to_bits(kib) == value * 8192
    # Queue burst: bits, OVS divides by 8 (htb_parse_class_details__).
    assert u.bits_to_bytes(u.libvirt_ovs_kib_to_bits(kib)) == u.kibibytes_to_bytes(kib)
    # Policing burst: libvirt writes KiB*8 "kbit", OVS multiplies by 1024/8 (tc_policer_init).
    kbit = u.libvirt_kib_to_ovs_policing_kbit(kib)
    assert kbit == value * 8
    assert u.ovs_policing_burst_to_bytes(kbit) == u.kibibytes_to_bytes(kib)
    # Policing rate: libvirt writes kB/s*8 kbit/s, OVS multiplies by 1000/8.
    rate = u.libvirt_kilobytes_per_s_to_ovs_policing_kbit(kbyte_rate)
    assert rate == value * 8
    assert u.ovs_policing_rate_to_bytes_per_s(rate) == u.kilobytes_per_s_to_bytes_per_s(kbyte_rate)
    # And the queue min/max-rate in bit/s (KBYTE_TO_BITS, x8000).
    assert u.kilobits_per_s_to_bits_per_s(rate) == u.kilobytes_per_s_to_bits_per_s(kbyte_rate)


# --- Neutron / OVS ----------------------------------------------------------------------


def test_ovs_policing_burst_300_kbit_is_38400_bytes() -> None:
    # ovs lib/netdev-linux.c:tc_policer_init, seed: ingress_policing_burst=300 ->
    # `tc police ... burst 38400b`.
    assert u.ovs_policing_burst_to_bytes(Kilobits(300)) == 38400


def test_ovs_policing_rate_3000_kbit_is_375000_bytes_per_s() -> None:
    # tc_policer_init: rate = kbits_rate * 1000 / 8; seed shows `rate 3000Kbit`.
    assert u.ovs_policing_rate_to_bytes_per_s(KilobitsPerSecond(3000)) == 375000
    assert u.kilobits_per_s_to_bits_per_s(KilobitsPerSecond(3000)) == 3_000_000


def test_ovs_policing_rate_and_burst_use_different_kilos() -> None:
    # The asymmetry of upstream-mapping.md section 4: a rate of 300kbit is 300000 bit/s,
    # a size of 300kbit is 38400 bytes (x128), not 37500 (x125).
    assert u.ovs_policing_rate_to_bytes_per_s(KilobitsPerSecond(300)) == 37500
    assert u.ovs_policing_burst_to_bytes(Kilobits(300)) == 38400


@SETTINGS
@given(uint32s)
def test_ovs_policing_formulas(value: int) -> None:
    assert u.ovs_policing_burst_to_bytes(Kilobits(value)) == value * 1024 // 8 == value * 128
    assert u.ovs_policing_rate_to_bytes_per_s(KilobitsPerSecond(value)) == value * 1000 // 8


@pytest.mark.parametrize(
    ("rate", "burst", "effective"),
    # ovs lib/netdev-linux.c:netdev_linux_set_policing: burst 0 -> 8000 kbit; rate 0 -> none.
    [(0, 0, 0), (0, 300, 0), (3000, 0, 8000), (3000, 300, 300), (1, 1, 1), (1, 0, 8000)],
)
def test_ovs_effective_policing_burst(rate: int, burst: int, effective: int) -> None:
    assert u.OVS_DEFAULT_POLICING_BURST_KBIT == 8000
    assert u.ovs_effective_policing_burst(KilobitsPerSecond(rate), Kilobits(burst)) == effective


@SETTINGS
@given(uint32s, uint32s)
def test_ovs_effective_policing_burst_property(rate: int, burst: int) -> None:
    result = u.ovs_effective_policing_burst(KilobitsPerSecond(rate), Kilobits(burst))
    if rate == 0:
        assert result == 0
    elif burst == 0:
        assert result == 8000
    else:
        assert result == burst


@pytest.mark.parametrize(
    ("max_kbps", "burst"),
    # neutron/agent/linux/tc_lib.py:TcCommand.get_ingress_qdisc_burst_value,
    # DEFAULT_BURST_RATE = 0.8: burst = int(0.8 * max_kbps).
    [(0, 0), (1, 0), (2, 1), (3000, 2400), (10000, 8000), (9, 7), (NEUTRON_MAX, 1717986917)],
)
def test_neutron_default_egress_burst_examples(max_kbps: int, burst: int) -> None:
    assert u.neutron_default_egress_burst(KilobitsPerSecond(max_kbps)) == burst


@settings(max_examples=200)
@given(neutron_ints)
def test_neutron_default_egress_burst_equals_int_of_float(max_kbps: int) -> None:
    # The integer formula must equal Neutron's float one for every value Neutron accepts.
    assert u.neutron_default_egress_burst(KilobitsPerSecond(max_kbps)) == int(0.8 * max_kbps)


@pytest.mark.parametrize(
    "max_kbps",
    # Values where float rounding could bite: multiples of 5 (exact 0.8x) near the top.
    [5, 10, 1_000_000_000, NEUTRON_MAX - 2, NEUTRON_MAX - 7, 2**31 - 5, 2**30, 2**30 + 5],
)
def test_neutron_default_egress_burst_edge_values(max_kbps: int) -> None:
    assert u.neutron_default_egress_burst(KilobitsPerSecond(max_kbps)) == int(0.8 * max_kbps)


@SETTINGS
@given(neutron_ints, neutron_ints)
def test_neutron_default_egress_burst_is_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert u.neutron_default_egress_burst(KilobitsPerSecond(low)) <= u.neutron_default_egress_burst(
        KilobitsPerSecond(high)
    )


@SETTINGS
@given(neutron_ints)
def test_kilobit_conversions_round_trip(value: int) -> None:
    # Neutron max_kbps/min_kbps -> bit/s x1000 (OVS Queue min-rate/max-rate, OVN LSP
    # qos_max_rate); max_burst_kbps -> bits x1000 (OVS Queue burst, OVN qos_burst).
    rate = u.kilobits_per_s_to_bits_per_s(KilobitsPerSecond(value))
    size = u.kilobits_to_bits(Kilobits(value))
    assert rate == value * 1000
    assert size == value * 1000
    assert u.bits_per_s_to_kilobits_per_s(rate) == value
    assert u.bits_to_kilobits(size) == value


@SETTINGS
@given(big)
def test_bits_to_kilobits_round_down(value: int) -> None:
    kbit = u.bits_to_kilobits(Bits(value))
    assert kbit * 1000 <= value < (kbit + 1) * 1000
    kbps = u.bits_per_s_to_kilobits_per_s(BitsPerSecond(value))
    assert kbps * 1000 <= value < (kbps + 1) * 1000


def test_neutron_ovs_ingress_queue_example() -> None:
    # neutron ovs_lib update_ingress_bw_limit_for_port: max-rate = max_kbps*1000,
    # burst = max_burst_kbps*1000 (bits); OVS then divides by 8 for tc.
    assert u.kilobits_per_s_to_bits_per_s(KilobitsPerSecond(3000)) == 3_000_000
    assert u.kilobits_to_bits(Kilobits(300)) == 300_000
    assert u.bits_to_bytes(u.kilobits_to_bits(Kilobits(300))) == 37500


@SETTINGS
@given(neutron_ints)
def test_kilopackets(value: int) -> None:
    # neutron OVS meters for packet_rate_limit: rate = max_kpps*1000, burst = max_burst_kpps*1000.
    assert u.kilopackets_per_s_to_packets_per_s(KilopacketsPerSecond(value)) == value * 1000
    assert u.kilopackets_to_packets(Kilopackets(value)) == value * 1000


def test_kilopackets_examples() -> None:
    assert u.kilopackets_per_s_to_packets_per_s(KilopacketsPerSecond(16)) == 16000
    assert u.kilopackets_to_packets(Kilopackets(2)) == 2000


@SETTINGS
@given(big)
def test_bits_and_bytes(value: int) -> None:
    assert u.bytes_to_bits(Bytes(value)) == value * 8
    assert u.bits_to_bytes(u.bytes_to_bits(Bytes(value))) == value
    byte_count = u.bits_to_bytes(Bits(value))
    assert byte_count * 8 <= value < (byte_count + 1) * 8
    assert u.bits_per_s_to_bytes_per_s(BitsPerSecond(value)) == value // 8


def test_bits_and_bytes_examples() -> None:
    assert u.BITS_PER_BYTE == 8
    assert u.bits_to_bytes(Bits(15)) == 1
    assert u.bits_to_bytes(Bits(16)) == 2
    assert u.bits_per_s_to_bytes_per_s(BitsPerSecond(3_000_000)) == 375000
    # neutron DPDK egress-policer: cir = max_kbps*1000//8 bytes/s.
    assert (
        u.bits_per_s_to_bytes_per_s(u.kilobits_per_s_to_bits_per_s(KilobitsPerSecond(3000)))
        == 3000 * 1000 // 8
    )


# --- SR-IOV -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kbps", "mbps"),
    # neutron eswitch_manager.py:EmbSwitch.set_device_rate + neutron_lib helpers.round_val
    [
        (0, 0),
        (1, 1),
        (999, 1),
        (1000, 1),
        (1499, 1),
        (1500, 2),
        (2499, 2),
        (2500, 3),
        (10**6, 1000),
    ],
)
def test_sriov_kbps_to_mbps_examples(kbps: int, mbps: int) -> None:
    assert u.sriov_kbps_to_mbps(KilobitsPerSecond(kbps)) == mbps


def _neutron_set_device_rate(rate_kbps: int) -> int:
    """neutron EmbSwitch.set_device_rate, verbatim logic (round_val from neutron_lib)."""
    if 0 < rate_kbps < 1000:
        return 1
    value = rate_kbps / 1000.0
    return int(
        decimal.Decimal(value).quantize(decimal.Decimal("1"), rounding=decimal.ROUND_HALF_UP)
    )


@SETTINGS
@given(neutron_ints)
def test_sriov_kbps_to_mbps_matches_neutron(kbps: int) -> None:
    assert u.sriov_kbps_to_mbps(KilobitsPerSecond(kbps)) == _neutron_set_device_rate(kbps)


@SETTINGS
@given(st.integers(min_value=0, max_value=NEUTRON_MAX // 1000))
def test_sriov_half_boundaries_match_neutron(mbit: int) -> None:
    # The x499/x500 boundary of every Mbit value, where half-up rounding decides.
    for kbps in (mbit * 1000 + 499, mbit * 1000 + 500):
        if kbps <= NEUTRON_MAX:
            assert u.sriov_kbps_to_mbps(KilobitsPerSecond(kbps)) == _neutron_set_device_rate(kbps)


@SETTINGS
@given(neutron_ints, neutron_ints)
def test_sriov_is_monotonic_and_never_zero_for_a_rate(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert u.sriov_kbps_to_mbps(KilobitsPerSecond(low)) <= u.sriov_kbps_to_mbps(
        KilobitsPerSecond(high)
    )
    if high > 0:
        assert u.sriov_kbps_to_mbps(KilobitsPerSecond(high)) >= 1


@SETTINGS
@given(st.integers(min_value=0, max_value=10**6))
def test_megabits(value: int) -> None:
    assert u.megabits_per_s_to_bits_per_s(MegabitsPerSecond(value)) == value * 1_000_000
    assert u.sriov_kbps_to_mbps(KilobitsPerSecond(value * 1000)) == value


# --- DSCP -------------------------------------------------------------------------------


def test_dscp_26_is_tos_104() -> None:
    # Pre-Ussuri neutron OVS agent flow `mod_nw_tos:104` for DSCP 26 (seed).
    assert u.dscp_to_tos(26) == 104
    assert hex(u.dscp_to_tos(26)) == "0x68"
    assert u.dscp_to_tos(46) == 184  # EF
    assert u.dscp_to_tos(0) == 0
    assert u.dscp_to_tos(63) == 252


@given(st.integers(min_value=0, max_value=63))
def test_dscp_to_tos_keeps_ecn_zero_and_round_trips(dscp: int) -> None:
    tos = u.dscp_to_tos(dscp)
    assert 0 <= tos <= 255
    assert tos & 0b11 == 0
    assert tos >> 2 == dscp
    assert tos == dscp * 4


# --- tc text forms ----------------------------------------------------------------------


def test_tc_text_examples() -> None:
    # libvirt virNetDevBandwidthSet writes `rate 32768kbps` and `burst 131072kb`;
    # OVS / neutron write `3000kbit`, tc prints `38400b`.
    assert u.tc_rate_kbps(KilobytesPerSecond(32768)) == "32768kbps"
    assert u.tc_size_kb(Kibibytes(131072)) == "131072kb"
    assert u.tc_rate_kbit(KilobitsPerSecond(3000)) == "3000kbit"
    assert u.tc_size_bytes(Bytes(38400)) == "38400b"


def test_tc_oracle_agrees_with_the_seed() -> None:
    # iproute2 lib/utils_math.c: `kbps` is kilobytes/s; a *size* `300kbit` is 38400 bytes.
    assert tc_rate_to_bits_per_s("32768kbps") == 262_144_000
    assert tc_size_to_bytes("131072kb") == 134_217_728
    assert tc_size_to_bytes("300kbit") == 38400
    assert tc_rate_to_bits_per_s("300kbit") == 300_000


@SETTINGS
@given(uint32s)
def test_tc_text_means_what_the_conversions_say(value: int) -> None:
    # Parsing what we write with iproute2's rules gives back the canonical quantity.
    assert tc_rate_to_bits_per_s(
        u.tc_rate_kbps(KilobytesPerSecond(value))
    ) == u.kilobytes_per_s_to_bits_per_s(KilobytesPerSecond(value))
    assert tc_size_to_bytes(u.tc_size_kb(Kibibytes(value))) == u.kibibytes_to_bytes(
        Kibibytes(value)
    )
    assert tc_rate_to_bits_per_s(
        u.tc_rate_kbit(KilobitsPerSecond(value))
    ) == u.kilobits_per_s_to_bits_per_s(KilobitsPerSecond(value))
    assert tc_size_to_bytes(u.tc_size_bytes(Bytes(value))) == value
    # OVS's policing burst equals what tc makes of "<burst>kbit" as a size.
    assert tc_size_to_bytes(f"{value}kbit") == u.ovs_policing_burst_to_bytes(Kilobits(value))


# --- Cinder per-GB ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_gb", "size", "floor", "cap", "expected"),
    # cinder/volume/manager.py:VolumeManager._parse_connection_options:
    # v = max(int(X_per_gb_min), int(X_per_gb) * size); X = min(v, int(X_max or v)).
    [
        (10, 10, 0, None, 100),
        (10, 10, 500, None, 500),  # floor wins
        (10, 100, 500, None, 1000),  # product wins
        (10, 10, 0, 50, 50),  # cap wins
        (10, 10, 500, 200, 200),  # cap beats the floor too
        (10, 10, 0, 100, 100),
        (0, 10, 0, None, 0),
        (3, 0, 0, None, 0),
        (10, 10, 0, 0, 0),  # a cap of 0 caps to 0
    ],
)
def test_per_gb_value_examples(
    per_gb: int, size: int, floor: int, cap: int | None, expected: int
) -> None:
    assert u.per_gb_value(per_gb, size, floor=floor, cap=cap) == expected


def test_per_gb_value_defaults_to_no_floor_and_no_cap() -> None:
    assert u.per_gb_value(7, 3) == 21


def _cinder_per_gb(per_gb: int, size: int, floor: int, cap: int | None) -> int:
    specs: dict[str, str] = {"X_per_gb": str(per_gb), "X_per_gb_min": str(floor)}
    if cap is not None:
        specs["X_max"] = str(cap)
    minimum_value = int(specs.pop("X_per_gb_min", 0))
    value = int(specs["X_per_gb"]) * int(size)
    per_gb_value = max(minimum_value, value)
    max_value = int(specs.pop("X_max", per_gb_value))
    return min(per_gb_value, max_value)


@SETTINGS
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=NEUTRON_MAX),
    st.integers(min_value=0, max_value=IOTUNE_MAX),
    st.none() | st.integers(min_value=0, max_value=IOTUNE_MAX),
)
def test_per_gb_value_matches_cinder(per_gb: int, size: int, floor: int, cap: int | None) -> None:
    result = u.per_gb_value(per_gb, size, floor=floor, cap=cap)
    assert result == _cinder_per_gb(per_gb, size, floor, cap)
    if cap is not None:
        assert result <= cap
    else:
        assert result >= floor
        assert result >= per_gb * size


@SETTINGS
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)
def test_per_gb_value_is_monotonic_in_size(per_gb: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert u.per_gb_value(per_gb, low, floor=100, cap=10**9) <= u.per_gb_value(
        per_gb, high, floor=100, cap=10**9
    )


# --- cgroups ----------------------------------------------------------------------------


def test_cgroup_constants() -> None:
    # libvirt vircgroup.h VIR_CGROUP_CPU_SHARES_MIN/MAX and VIR_CGROUPV2_WEIGHT_MIN/MAX;
    # qemu_command/vircgroup period [1000, 1000000] and quota [1000, 17592186044415].
    assert (u.CGROUP_V1_SHARES_MIN, u.CGROUP_V1_SHARES_MAX) == (2, 262144)
    assert (u.CGROUP_V2_WEIGHT_MIN, u.CGROUP_V2_WEIGHT_MAX) == (1, 10000)
    assert (u.CFS_PERIOD_MIN_US, u.CFS_PERIOD_MAX_US) == (1000, 1_000_000)
    assert (u.CFS_QUOTA_MIN_US, u.CFS_QUOTA_MAX_US) == (1000, 17592186044415)
    assert u.CFS_QUOTA_MAX_US == 2**44 - 1  # libvirt VIR_CGROUP_CPU_QUOTA_MAX


def test_relative_cpu_share() -> None:
    # Nova's old default 1024 x vCPUs against the v1 default 1024 is 1.0 per vCPU; the
    # same number written unconverted as cpu.weight against the v2 default 100 is 10.24.
    assert u.relative_cpu_share(1024, u.CGROUP_V1_DEFAULT_SHARES) == 1.0
    assert u.relative_cpu_share(1024, u.CGROUP_V2_DEFAULT_WEIGHT) == pytest.approx(10.24)
    assert u.relative_cpu_share(2048, 1024) == 2.0


# --- the inverse conversions the compilers use to write upstream units -------------------


def test_inverse_conversions_on_the_seed_values() -> None:
    # Seed: quota:vif_inbound_average=32768 kB/s is held as 32768000 bytes/s and written back
    # as average='32768'; burst 131072 KiB as 134217728 bytes.
    assert u.bytes_per_s_to_kilobytes_per_s(u.BytesPerSecond(32_768_000)) == 32768
    assert u.bytes_to_kibibytes(u.Bytes(134_217_728)) == 131072
    assert u.packets_per_s_to_kilopackets_per_s(u.PacketsPerSecond(10_000)) == 10
    assert u.packets_to_kilopackets(u.Packets(1_999)) == 1  # rounded down


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_inverse_conversions_round_trip(n: int) -> None:
    assert (
        u.bytes_per_s_to_kilobytes_per_s(u.kilobytes_per_s_to_bytes_per_s(u.KilobytesPerSecond(n)))
        == n
    )
    assert (
        u.packets_per_s_to_kilopackets_per_s(
            u.kilopackets_per_s_to_packets_per_s(u.KilopacketsPerSecond(n))
        )
        == n
    )
    assert u.packets_to_kilopackets(u.kilopackets_to_packets(u.Kilopackets(n))) == n
