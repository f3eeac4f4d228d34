"""Typed quantities and every unit conversion qosplane performs.

One canonical unit per kind: bits/s for network rates, bytes/s for disk throughput,
bytes for sizes, operations/s for IOPS, packets/s for packet rates. Each conversion
between an upstream unit and a canonical one is one named function here, tested against
the upstream examples (tests/test_units.py). Other modules call
these functions rather than scaling numbers themselves.

Upstream facts (see docs/units.md for the citations):
- libvirt `<bandwidth>` average/peak are kilobytes/s (1000 B), burst is kibibytes (1024 B).
- tc rate `kbps` is kilobytes/s (8000 bit/s), tc rate `kbit` is 1000 bit/s;
  tc size `kb` is 1024 bytes, tc size `kbit` is 128 bytes (iproute2 lib/utils_math.c).
- Neutron `max_kbps` is kbit/s (1000 bit/s); `max_burst_kbps` is a size in kbit.
- OVS `ingress_policing_rate` is kbit/s (x1000/8 bytes/s), `ingress_policing_burst` is kbit
  but converted x1024/8 to bytes (lib/netdev-linux.c:tc_policer_init).
- OVS Queue/QoS `min-rate`, `max-rate` are bit/s and `burst` is bits.
"""

from __future__ import annotations

import math
from typing import NewType

BitsPerSecond = NewType("BitsPerSecond", int)
BytesPerSecond = NewType("BytesPerSecond", int)
Bytes = NewType("Bytes", int)
Bits = NewType("Bits", int)
OpsPerSecond = NewType("OpsPerSecond", int)
PacketsPerSecond = NewType("PacketsPerSecond", int)
Packets = NewType("Packets", int)
Microseconds = NewType("Microseconds", int)

# Upstream units, kept as their own types so they cannot be passed where a canonical
# quantity is expected.
KilobytesPerSecond = NewType("KilobytesPerSecond", int)  # libvirt average/peak, tc "kbps"
Kibibytes = NewType("Kibibytes", int)  # libvirt burst, tc size "kb"
KilobitsPerSecond = NewType("KilobitsPerSecond", int)  # Neutron max_kbps, OVS policing rate
Kilobits = NewType("Kilobits", int)  # Neutron max_burst_kbps, OVS policing burst
KilopacketsPerSecond = NewType("KilopacketsPerSecond", int)  # Neutron max_kpps
Kilopackets = NewType("Kilopackets", int)  # Neutron max_burst_kpps
MegabitsPerSecond = NewType("MegabitsPerSecond", int)  # SR-IOV VF max_tx_rate

BITS_PER_BYTE = 8
ETHERNET_HEADER_BYTES = Bytes(14)


# --- libvirt <bandwidth> -----------------------------------------------------------------


def kilobytes_per_s_to_bits_per_s(value: KilobytesPerSecond) -> BitsPerSecond:
    """libvirt average/peak (kB/s) to bit/s: x 8000."""
    return BitsPerSecond(value * 8000)


def kilobytes_per_s_to_bytes_per_s(value: KilobytesPerSecond) -> BytesPerSecond:
    """libvirt average/peak (kB/s) to bytes/s: x 1000."""
    return BytesPerSecond(value * 1000)


def bytes_per_s_to_kilobytes_per_s(value: BytesPerSecond) -> KilobytesPerSecond:
    """bytes/s to libvirt's kB/s, rounded down."""
    return KilobytesPerSecond(value // 1000)


def bits_per_s_to_kilobytes_per_s(value: BitsPerSecond) -> KilobytesPerSecond:
    """bit/s to libvirt's kB/s, rounded down (libvirt cannot express fractions)."""
    return KilobytesPerSecond(value // 8000)


def kibibytes_to_bytes(value: Kibibytes) -> Bytes:
    """libvirt burst and tc size `kb`: x 1024."""
    return Bytes(value * 1024)


def bytes_to_kibibytes(value: Bytes) -> Kibibytes:
    """bytes to KiB, rounded down."""
    return Kibibytes(value // 1024)


def libvirt_htb_quantum_bytes(average: KilobytesPerSecond) -> Bytes:
    """The HTB quantum libvirt adds to a class: average*1024/8/1500, at least 1.

    libvirt src/util/virnetdevbandwidth.c:virNetDevBandwidthCmdAddOptimalQuantum; its tests
    (tests/virnetdevbandwidthtest.c) expect 1024 -> 87, 1 -> 1, 4294967295 -> 366503875;
    the seed's 32768 gives 2796 by the same formula.
    """
    return Bytes(max(1, average * 1024 // 8 // 1500))


LIBVIRT_POLICE_BURST_CAP_KIB = Kibibytes(0xFFFFFFFF // 1024)


def libvirt_default_police_burst(average: KilobytesPerSecond) -> Kibibytes:
    """Burst libvirt uses for `<outbound>` police when none is given: MIN(average, UINT_MAX/1024)."""
    return Kibibytes(min(average, LIBVIRT_POLICE_BURST_CAP_KIB))


# --- libvirt on OVS ports (virNetDevOpenvswitchInterfaceSetQos) ----------------------------


def libvirt_ovs_kib_to_bits(value: Kibibytes) -> Bits:
    """libvirt KIBIBYTE_TO_BITS for the OVS queue burst: x 8192."""
    return Bits(value * 8192)


def libvirt_kilobytes_per_s_to_ovs_policing_kbit(value: KilobytesPerSecond) -> KilobitsPerSecond:
    """libvirt VIR_NETDEV_RX_TO_OVS for ingress_policing_rate: kB/s x 8 = kbit/s."""
    return KilobitsPerSecond(value * 8)


def libvirt_kib_to_ovs_policing_kbit(value: Kibibytes) -> Kilobits:
    """libvirt VIR_NETDEV_RX_TO_OVS for ingress_policing_burst: KiB x 8 = kbit."""
    return Kilobits(value * 8)


# --- Neutron / OVS ------------------------------------------------------------------------


def kilobits_per_s_to_bits_per_s(value: KilobitsPerSecond) -> BitsPerSecond:
    """Neutron max_kbps/min_kbps and OVS ingress_policing_rate: x 1000."""
    return BitsPerSecond(value * 1000)


def bits_per_s_to_kilobits_per_s(value: BitsPerSecond) -> KilobitsPerSecond:
    """bit/s to kbit/s, rounded down."""
    return KilobitsPerSecond(value // 1000)


def kilobits_in_one_second(rate: KilobitsPerSecond) -> Kilobits:
    """What a meter without a burst lets through at once on the userspace datapath: one
    second of its rate (host-capabilities.md §12)."""
    return Kilobits(rate)


def kilobits_to_bits(value: Kilobits) -> Bits:
    """Neutron max_burst_kbps as a size in bits (OVS Queue burst, OVN): x 1000."""
    return Bits(value * 1000)


def bits_to_kilobits(value: Bits) -> Kilobits:
    """bits to kbit, rounded down."""
    return Kilobits(value // 1000)


def ovs_policing_burst_to_bytes(value: Kilobits) -> Bytes:
    """What OVS makes of ingress_policing_burst: kbit x 1024 / 8 bytes (tc_policer_init).

    The seed: ingress_policing_burst=300 -> tc police burst 38400b.
    """
    return Bytes(value * 1024 // 8)


def ovs_policing_rate_to_bytes_per_s(value: KilobitsPerSecond) -> BytesPerSecond:
    """What OVS makes of ingress_policing_rate: kbit/s x 1000 / 8 bytes/s."""
    return BytesPerSecond(value * 1000 // 8)


OVS_DEFAULT_POLICING_BURST_KBIT = Kilobits(8000)


def ovs_effective_policing_burst(rate: KilobitsPerSecond, burst: Kilobits) -> Kilobits:
    """OVS uses 8000 kbit when the burst column is 0, and no burst when the rate is 0."""
    if rate == 0:
        return Kilobits(0)
    if burst == 0:
        return OVS_DEFAULT_POLICING_BURST_KBIT
    return burst


def neutron_default_egress_burst(max_kbps: KilobitsPerSecond) -> Kilobits:
    """Neutron's OVS/linuxbridge egress burst when max_burst_kbps is 0: int(0.8 * max_kbps).

    neutron/agent/linux/tc_lib.py:TcCommand.get_ingress_qdisc_burst_value returns
    float(max_kbps) * DEFAULT_BURST_RATE (0.8, neutron_lib/services/qos/constants.py); the OVS
    agent's _update_egress_bandwidth_limit truncates it with int(). Integer arithmetic (max_kbps * 8 // 10) equals int(0.8 * max_kbps) for every value
    Neutron accepts (max_kbps < 2**31), without float rounding doubts.
    """
    return Kilobits(max_kbps * 8 // 10)


def kilopackets_per_s_to_packets_per_s(value: KilopacketsPerSecond) -> PacketsPerSecond:
    """Neutron max_kpps/min_kpps to OpenFlow meter pktps: x 1000."""
    return PacketsPerSecond(value * 1000)


def packets_per_s_to_kilopackets_per_s(value: PacketsPerSecond) -> KilopacketsPerSecond:
    """packets/s to Neutron's kpps, rounded down."""
    return KilopacketsPerSecond(value // 1000)


def packets_to_kilopackets(value: Packets) -> Kilopackets:
    """packets to Neutron's kilo-packets, rounded down."""
    return Kilopackets(value // 1000)


def kilopackets_to_packets(value: Kilopackets) -> Packets:
    """Neutron max_burst_kpps to an OpenFlow meter burst in packets: x 1000."""
    return Packets(value * 1000)


def bits_to_bytes(value: Bits) -> Bytes:
    """bits to bytes, rounded down."""
    return Bytes(value // BITS_PER_BYTE)


def bytes_to_bits(value: Bytes) -> Bits:
    """bytes to bits."""
    return Bits(value * BITS_PER_BYTE)


def bits_per_s_to_bytes_per_s(value: BitsPerSecond) -> BytesPerSecond:
    """bit/s to bytes/s, rounded down."""
    return BytesPerSecond(value // BITS_PER_BYTE)


def sriov_kbps_to_mbps(value: KilobitsPerSecond) -> MegabitsPerSecond:
    """Neutron SR-IOV agent rounding: 0 stays 0, below 1000 becomes 1, else half-up /1000.

    neutron .../mech_sriov/agent/eswitch_manager.py:EmbSwitch.set_device_rate (below 1000 -> 1)
    and neutron_lib/utils/helpers.py:round_val (half up); 2499 -> 2 and 2500 -> 3.
    """
    if value == 0:
        return MegabitsPerSecond(0)
    if value < 1000:
        return MegabitsPerSecond(1)
    return MegabitsPerSecond((value + 500) // 1000)


def megabits_per_s_to_bits_per_s(value: MegabitsPerSecond) -> BitsPerSecond:
    """Mbit/s to bit/s: x 1e6."""
    return BitsPerSecond(value * 1_000_000)


# --- DSCP ---------------------------------------------------------------------------------


def dscp_to_tos(dscp: int) -> int:
    """The IP TOS byte carrying a DSCP: dscp << 2 (ECN bits zero). DSCP 26 -> TOS 104 (0x68)."""
    return dscp << 2


# --- tc text forms ------------------------------------------------------------------------


def tc_rate_kbps(value: KilobytesPerSecond) -> str:
    """A tc rate argument in kilobytes/s, as libvirt writes it: `32768kbps`."""
    return f"{value}kbps"


def tc_size_kb(value: Kibibytes) -> str:
    """A tc size argument in KiB, as libvirt writes it: `131072kb`."""
    return f"{value}kb"


def tc_rate_kbit(value: KilobitsPerSecond) -> str:
    """A tc rate argument in kbit/s: `3000kbit`."""
    return f"{value}kbit"


def tc_size_bytes(value: Bytes) -> str:
    """A tc size argument in bytes: `38400b`."""
    return f"{value}b"


def tc_rate_bits(value: BitsPerSecond) -> str:
    """A tc rate argument in bit/s, exact for any rate: `262144000bit`."""
    return f"{value}bit"


# tc prints rates with SI prefixes and sizes with binary ones (iproute2 tc/tc_util.c
# sprint_rate / sprint_size); the agent reads them back to compare with what it wrote.
_TC_RATE_UNITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3, "Tbit": 1000**4}
_TC_SIZE_UNITS = {"b": 1, "Kb": 1024, "Mb": 1024**2, "Gb": 1024**3}


def parse_tc_rate_bits(text: str) -> BitsPerSecond:
    """A rate as `tc class show` prints it (`262144Kbit`, `10Mbit`, `999bit`) in bit/s.

    tc divides by 1000 while the rate is divisible or at least 1000 of the next unit, so a
    printed rate can be up to 0.1% below the configured one."""
    for suffix in sorted(_TC_RATE_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number = text.removesuffix(suffix)
            return BitsPerSecond(round(float(number) * _TC_RATE_UNITS[suffix]))
    raise ValueError(f"not a tc rate: {text!r}")


def tc_rate_as_printed(value: BitsPerSecond) -> BitsPerSecond:
    """The rate `tc class show` will print for `value`, read back: what an exact
    comparison of desired and observed rates must compare against."""
    number: int = value
    scale = 1
    while number >= 1000 and (number % 1000 == 0 or number >= 1_000_000) and scale < 1000**4:
        number //= 1000
        scale *= 1000
    return BitsPerSecond(number * scale)


def tc_burst_resolution_bytes(rate_bits_per_s: BitsPerSecond) -> Bytes:
    """How far an htb burst can come back from the kernel below what was set: tc turns
    the burst into whole microseconds at the rate on the way in and on the way out, so up
    to 2 us of the rate is lost (measured: 1024000 bytes at 100 Gbit/s read back as
    1000000, at 10 Gbit/s as 1022500)."""
    return Bytes(math.ceil(2 * bits_per_s_to_bytes_per_s(rate_bits_per_s) / 1_000_000))


def parse_tc_size_bytes(text: str) -> Bytes:
    """A size as tc prints it (`1600b`, `125Kb`, `128Mb`) in bytes; tc rounds a size to Mb
    when within 1 KiB of it and to Kb when within 16 bytes."""
    for suffix in sorted(_TC_SIZE_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number = text.removesuffix(suffix)
            return Bytes(round(float(number) * _TC_SIZE_UNITS[suffix]))
    raise ValueError(f"not a tc size: {text!r}")


def tcp_goodput_bits_per_s(rate_bits_per_s: BitsPerSecond, mtu_bytes: int = 1500) -> int:
    """Steady TCP goodput through a shaper counting Ethernet frames: the payload share of a
    full frame, (MTU - 40 IP/TCP - 12 timestamps) / (MTU + 14 Ethernet header).

    For MTU 1500 that is 1448/1514 = 0.9564, measured on this kernel's htb to within 0.1%
    (shared/reference/host-capabilities.md)."""
    payload = mtu_bytes - 40 - 12
    frame = mtu_bytes + 14
    return rate_bits_per_s * payload // frame


def udp_frame_bytes(payload_bytes: Bytes) -> Bytes:
    """The Ethernet frame a shaper counts for one UDP datagram: payload + 8 UDP + 20 IP +
    14 Ethernet header."""
    return Bytes(payload_bytes + 8 + 20 + 14)


def frames_per_s(rate_bits_per_s: BitsPerSecond, frame_bytes: Bytes) -> PacketsPerSecond:
    """How many frames of `frame_bytes` a byte-rate limit lets through each second."""
    return PacketsPerSecond(rate_bits_per_s // bytes_to_bits(frame_bytes))


# --- Cinder -------------------------------------------------------------------------------


def per_gb_value(per_gb: int, size_gb: int, floor: int = 0, cap: int | None = None) -> int:
    """Cinder's per-GB limit: max(floor, per_gb * size), then min(that, cap) when capped.

    cinder/volume/manager.py:VolumeManager._parse_connection_options.
    """
    value = max(floor, per_gb * size_gb)
    if cap is not None:
        value = min(value, cap)
    return value


# --- cgroups ------------------------------------------------------------------------------

CGROUP_V1_SHARES_MIN = 2
CGROUP_V1_SHARES_MAX = 262144
CGROUP_V2_WEIGHT_MIN = 1
CGROUP_V2_WEIGHT_MAX = 10000
CGROUP_V1_DEFAULT_SHARES = 1024
CGROUP_V2_DEFAULT_WEIGHT = 100
CFS_PERIOD_MIN_US = Microseconds(1000)
CFS_PERIOD_MAX_US = Microseconds(1_000_000)
CFS_QUOTA_MIN_US = Microseconds(1000)
CFS_QUOTA_MAX_US = Microseconds(17592186044415)


def relative_cpu_share(value: int, default: int) -> float:
    """The CPU share of a group against a sibling at the kernel default (1024 v1, 100 v2)."""
    return value / default
