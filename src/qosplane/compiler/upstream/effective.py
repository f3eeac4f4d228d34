"""What really holds: per device and guest-relative direction, the limit in canonical units,
the layer and artifact that enforce it, and the conflicts and losses on the way.

Facts this encodes (upstream-mapping.md sections 3, 6, 7 and 10; the seed):
- OVS deletes a port's tc ingress qdisc whenever it (re)applies policing
  (lib/netdev-linux.c:netdev_linux_set_policing), so libvirt's police on a tap that is an
  OVS port is gone: the seed's `tc qdisc show` has only htb and sfq.
- libvirt's police ignores `peak`; its HTB without `peak` caps at `average`.
- libvirt on `ethernet` taps does not swap: `<inbound>` polices traffic *from* the guest.
- Newer libvirt on OVS ports makes `average` an HTB min-rate: a guarantee, not a cap.
- Neutron egress limits on OVS are ingress policing (burst default 80%); ingress limits are a
  linux-htb queue; SR-IOV enforces only egress, in whole Mbit/s, without burst.
- Minimum bandwidth has a data plane only for OVS egress on vlan/flat networks.
- QEMU throttles each disk alone; Nova never applies flavor disk quotas to volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qosplane.compiler.upstream.cgroups import cgroup_problems
from qosplane.compiler.upstream.libvirt_xml import IOTUNE_ELEMENTS, effective_cputune
from qosplane.compiler.upstream.neutron_paths import BandwidthPath, bandwidth_path, is_sriov
from qosplane.compiler.upstream.ovn import ovn_handles, ovn_plan
from qosplane.compiler.upstream.ovs import meter_id, neutron_egress_burst_kbit, physical_bridge
from qosplane.compiler.upstream.qemu_args import THROTTLING_OPTIONS
from qosplane.compiler.upstream.tc import device_sides, libvirt_kbps, libvirt_kib, police_burst
from qosplane.compiler.upstream.topology import DiskWiring, PortWiring
from qosplane.model.flavor import Flavor, VifLimit
from qosplane.model.host_facts import (
    CgroupVersion,
    DscpFlowStyle,
    HostFacts,
    LibvirtBandwidthBackend,
    NeutronBackend,
    NovaSharesDefault,
)
from qosplane.model.instance import Instance
from qosplane.model.network_qos import (
    BandwidthLimitRule,
    Direction,
    DscpMarkingRule,
    MinimumBandwidthRule,
    MinimumPacketRateRule,
    PacketRateLimitRule,
)
from qosplane.model.plan import (
    CpuQuota,
    CpuWeight,
    Declared,
    DiskBytes,
    DiskIops,
    DscpMark,
    EffectiveLimit,
    Enforcement,
    Finding,
    Limit,
    MinRate,
    OvnLspQosOptions,
    OvnQosRow,
    PacketRate,
    Rate,
)
from qosplane.model.units import (
    BITS_PER_BYTE,
    CGROUP_V1_DEFAULT_SHARES,
    CGROUP_V2_DEFAULT_WEIGHT,
    ETHERNET_HEADER_BYTES,
    BitsPerSecond,
    Bytes,
    BytesPerSecond,
    Kibibytes,
    Kilobits,
    KilobitsPerSecond,
    KilobytesPerSecond,
    bits_per_s_to_bytes_per_s,
    bits_per_s_to_kilobits_per_s,
    bits_to_bytes,
    bits_to_kilobits,
    dscp_to_tos,
    kibibytes_to_bytes,
    kilobytes_per_s_to_bits_per_s,
    libvirt_kib_to_ovs_policing_kbit,
    libvirt_kilobytes_per_s_to_ovs_policing_kbit,
    megabits_per_s_to_bits_per_s,
    ovs_policing_burst_to_bytes,
    packets_per_s_to_kilopackets_per_s,
    packets_to_kilopackets,
    relative_cpu_share,
    sriov_kbps_to_mbps,
)

TO_GUEST = "ingress"
FROM_GUEST = "egress"


@dataclass(slots=True)
class Effective:
    limits: list[EffectiveLimit] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


# --- network ------------------------------------------------------------------------------


def _vif_declared(flavor: Flavor, way: str, limit: VifLimit) -> list[Declared]:
    src = f"flavor {flavor.name}"
    out = [
        Declared(src, f"quota:vif_{way}_average", f"{libvirt_kbps(limit.average_bytes_per_s)} kB/s")
    ]
    if limit.peak_bytes_per_s is not None:
        out.append(
            Declared(src, f"quota:vif_{way}_peak", f"{libvirt_kbps(limit.peak_bytes_per_s)} kB/s")
        )
    if limit.burst_bytes is not None:
        out.append(Declared(src, f"quota:vif_{way}_burst", f"{libvirt_kib(limit.burst_bytes)} KiB"))
    return out


def _tcp_burst_checks(
    entry: EffectiveLimit, e: Enforcement, mtu: int, facts: HostFacts, eff: Effective
) -> None:
    """A policer drops what exceeds its bucket: below one frame it drops every full-size
    packet; below a bandwidth-delay product TCP cannot reach the rate."""
    if e.mechanism != "police" or not e.holds or not isinstance(e.limit, Rate):
        return
    burst, rate = e.limit.burst_bytes, e.limit.rate_bits_per_s
    if burst is None:
        return
    frame = mtu + ETHERNET_HEADER_BYTES
    suggested = max(2 * frame, rate // BITS_PER_BYTE * facts.tcp_reference_rtt_ms // 1000)
    if burst < frame:
        eff.errors.append(
            Finding(
                "burst_below_mtu",
                f"{e.artifact}: burst {burst} bytes is below one {frame}-byte frame (MTU {mtu}); "
                f"every full-size packet is dropped. Suggested burst: {suggested} bytes",
                entry.device,
            )
        )
    elif burst < suggested:
        eff.warnings.append(
            Finding(
                "burst_too_small_for_tcp",
                f"{e.artifact}: burst {burst} bytes is below the bandwidth-delay product "
                f"({suggested} bytes at {rate} bit/s and {facts.tcp_reference_rtt_ms} ms RTT); "
                "TCP will stay well below the rate. Suggested burst: "
                f"{suggested} bytes ({suggested * BITS_PER_BYTE // 1000} kbit)",
                entry.device,
            )
        )


def _flavor_vif(
    wiring: PortWiring, flavor: Flavor, entries: dict[str, EffectiveLimit], eff: Effective
) -> None:
    qos = flavor.qos
    dev = wiring.guest_device or wiring.port.id
    for way, declared_dir, limit in (
        ("inbound", TO_GUEST, qos.vif_inbound),
        ("outbound", FROM_GUEST, qos.vif_outbound),
    ):
        if limit is None:
            continue
        decl = _vif_declared(flavor, way, limit)
        if not wiring.nova_writes_bandwidth:
            entry = entries[declared_dir]
            entry.declared.extend(decl)
            msg = (
                f"quota:vif_{way}_* is dropped: Nova writes no <bandwidth> for "
                f"{wiring.vif_type.value} VIFs"
            )
            entry.losses.append(msg)
            eff.warnings.append(Finding("vif_quota_dropped", msg, dev, f"quota:vif_{way}_average"))
            continue
        sides = device_sides(wiring, qos)
        on_tx = sides.tx is limit
        # Which guest direction the artifact really touches: a tap's TX is to the guest,
        # a macvtap's TX is from it (it shares the guest's view).
        tap_like = wiring.libvirt_type in ("bridge", "ethernet")
        actual_dir = (
            (TO_GUEST if on_tx else FROM_GUEST) if tap_like else (FROM_GUEST if on_tx else TO_GUEST)
        )
        entry = entries[actual_dir]
        entry.declared.extend(decl)
        if actual_dir != declared_dir:
            msg = (
                f"quota:vif_{way}_* lands on {'to' if actual_dir == TO_GUEST else 'from'}-guest "
                f"traffic: libvirt does not swap directions for type='{wiring.libvirt_type}' "
                "taps (virDomainNetTypeSharesHostView)"
            )
            entry.conflicts.append(msg)
            eff.warnings.append(Finding("direction_inverted", msg, dev, f"quota:vif_{way}_average"))
        avg_kbps = libvirt_kbps(limit.average_bytes_per_s)
        avg_bits = kilobytes_per_s_to_bits_per_s(avg_kbps)
        vif = _Vif(wiring, way, limit, entry, eff, dev, avg_kbps, avg_bits)
        if wiring.libvirt_backend is LibvirtBandwidthBackend.OVS:
            _libvirt_ovs_vif(vif, on_tx)
        elif on_tx:
            _libvirt_htb(vif)
        else:
            _libvirt_police(vif)


@dataclass(slots=True)
class _Vif:
    """One direction of a flavor's VIF quota on one port, as libvirt applies it."""

    wiring: PortWiring
    way: str  # inbound or outbound, as the quota key says
    limit: VifLimit
    entry: EffectiveLimit  # the guest direction the artifact really touches
    eff: Effective
    dev: str
    avg_kbps: KilobytesPerSecond
    avg_bits: BitsPerSecond


def _libvirt_ovs_vif(vif: _Vif, on_tx: bool) -> None:
    """Newer libvirt on an OVS port: average as an HTB min-rate, police as OVS policing."""
    way, limit, entry, eff = vif.way, vif.limit, vif.entry, vif.eff
    dev, avg_kbps, avg_bits = vif.dev, vif.avg_kbps, vif.avg_bits
    if on_tx:
        peak = limit.peak_bytes_per_s
        e = Enforcement(
            "libvirt",
            f"OVS QoS linux-htb queue 0 on Port {dev}",
            "guarantee",
            f"other_config:min-rate={avg_bits}"
            + (
                f" max-rate={kilobytes_per_s_to_bits_per_s(libvirt_kbps(peak))}"
                if peak is not None
                else ""
            ),
            MinRate(
                avg_bits,
                kilobytes_per_s_to_bits_per_s(libvirt_kbps(peak)) if peak is not None else None,
            ),
            holds=peak is not None,
            note="libvirt on OVS ports makes average an HTB min-rate, not a cap",
        )
        if peak is None:
            msg = (
                f"quota:vif_{way}_average {avg_kbps} kB/s is a guarantee (OVS min-rate) "
                "on this host, not a cap; without a peak the port runs at link speed"
            )
            entry.losses.append(msg)
            eff.warnings.append(Finding("average_not_a_cap", msg, dev, f"quota:vif_{way}_average"))
        entry.candidates.append(e)
    else:
        burst_kib = libvirt_kib(limit.burst_bytes) if limit.burst_bytes else 0
        burst_bytes = (
            kibibytes_to_bytes(libvirt_kib(limit.burst_bytes))
            if limit.burst_bytes
            else ovs_policing_burst_to_bytes(Kilobits(8000))
        )
        e = Enforcement(
            "libvirt",
            f"OVS Interface {dev} ingress_policing",
            "police",
            f"ingress_policing_rate={libvirt_kilobytes_per_s_to_ovs_policing_kbit(avg_kbps)} "
            f"ingress_policing_burst={libvirt_kib_to_ovs_policing_kbit(Kibibytes(burst_kib))}",
            Rate(avg_bits, burst_bytes=burst_bytes),
        )
        entry.candidates.append(e)


def _libvirt_htb(vif: _Vif) -> None:
    """libvirt's htb class on the tap's root: the average, up to the peak on its burst."""
    way, limit, entry = vif.way, vif.limit, vif.entry
    dev, avg_kbps, avg_bits = vif.dev, vif.avg_kbps, vif.avg_bits
    if avg_kbps == 0:
        entry.losses.append(f"quota:vif_{way}_average is 0: libvirt adds no HTB")
        return
    ceil = libvirt_kbps(limit.peak_bytes_per_s) if limit.peak_bytes_per_s is not None else avg_kbps
    ceil_bits = kilobytes_per_s_to_bits_per_s(ceil)
    shaped = Rate(
        avg_bits,
        ceil_bits,
        kibibytes_to_bytes(libvirt_kib(limit.burst_bytes))
        if limit.burst_bytes is not None
        else None,
    )
    written = f"rate {avg_kbps}kbps ceil {ceil}kbps"
    if limit.burst_bytes is not None:
        written += f" burst {libvirt_kib(limit.burst_bytes)}kb"
    note = ""
    if ceil > avg_kbps:
        # libvirt's class 1:1 is a root class: it has no parent to borrow from, so
        # it exceeds `rate` only on its burst tokens. The sustained cap is the
        # average; peak holds for burst / (peak - average) seconds at most
        # (measured: shared/reference/host-capabilities.md, 191 Mbit/s for 4 s,
        # then 95.6, for the seed's 2x peak and 4 s burst).
        burst_size = shaped.burst_bytes or 0
        seconds = burst_size * 8 / (ceil_bits - avg_bits) if burst_size else 0.0
        note = (
            f"peak {ceil_bits} bit/s only while the burst lasts "
            f"(about {seconds:.1f} s); sustained: the average"
        )
    entry.candidates.append(
        Enforcement(
            "libvirt",
            f"tc htb class 1:1 on {dev} root",
            "shape",
            written,
            shaped,
            note=note,
        )
    )


def _libvirt_police(vif: _Vif) -> None:
    """libvirt's police on the tap's ingress qdisc (what the guest sends)."""
    wiring, way, limit, entry, eff = vif.wiring, vif.way, vif.limit, vif.entry, vif.eff
    dev, avg_kbps, avg_bits = vif.dev, vif.avg_kbps, vif.avg_bits
    burst_kib = police_burst(limit)
    e = Enforcement(
        "libvirt",
        f"tc police on {dev} ingress qdisc",
        "police",
        f"rate {avg_kbps}kbps burst {burst_kib}kb",
        Rate(avg_bits, burst_bytes=kibibytes_to_bytes(burst_kib)),
        holds=not wiring.tap_in_ovs,
        note="deleted by Open vSwitch: it owns the ingress qdisc of its ports"
        if wiring.tap_in_ovs
        else "",
    )
    entry.candidates.append(e)
    if limit.peak_bytes_per_s is not None:
        entry.losses.append(f"quota:vif_{way}_peak is ignored: libvirt's police has no peak")
    if wiring.tap_in_ovs:
        msg = (
            f"{dev} is an Open vSwitch port: OVS deletes its ingress qdisc when it sets "
            f"policing, so libvirt's police for quota:vif_{way}_* does not hold "
            "(the seed's tc qdisc show lists only htb and sfq)"
        )
        entry.losses.append(msg)
        eff.warnings.append(Finding("police_deleted_by_ovs", msg, dev, f"quota:vif_{way}_average"))


def _policy_source(wiring: PortWiring) -> str:
    name = wiring.policy.name if wiring.policy else ""
    return f"{wiring.policy_source} policy {name or (wiring.policy.id if wiring.policy else '')}".strip()


@dataclass(slots=True)
class _RuleSite:
    """Where a port's Neutron rules land: the port's wiring and the names their findings
    use, worked out once per port rather than once per rule."""

    wiring: PortWiring
    facts: HostFacts
    eff: Effective
    src: str  # "port policy bw-limiter"
    dev: str  # the device the findings name
    sriov: bool


def _neutron_rules(
    wiring: PortWiring,
    facts: HostFacts,
    entries: dict[str, EffectiveLimit],
    extra: list[EffectiveLimit],
    eff: Effective,
) -> None:
    """What holds for each rule of the port's effective policy."""
    if wiring.policy is None:
        return
    dev = wiring.ovs_port or wiring.guest_device or wiring.port.id
    site = _RuleSite(wiring, facts, eff, _policy_source(wiring), dev, is_sriov(wiring))
    if facts.neutron_backend is NeutronBackend.OVN and not site.sriov:
        if ovn_handles(wiring):
            _ovn_rules(site, entries, extra)
        else:  # a network device port: ML2/OVN writes nothing for it
            msg = "ML2/OVN applies no QoS policy to network device ports"
            eff.errors.append(Finding("not_enforceable", msg, dev, "qos_policy"))
        return
    for rule in wiring.policy.rules:
        match rule:
            case BandwidthLimitRule():
                _bandwidth_rule(site, rule, entries[rule.direction.value])
            case PacketRateLimitRule():
                _packet_rate_rule(site, rule, extra)
            case DscpMarkingRule():
                _dscp_rule(site, rule, extra)
            case MinimumBandwidthRule():
                _min_bandwidth_rule(site, rule, extra)
            case MinimumPacketRateRule():
                _min_packet_rate_rule(site, rule, extra)


def _declare_bandwidth(site: _RuleSite, rule: BandwidthLimitRule, entry: EffectiveLimit) -> None:
    entry.declared.append(
        Declared(
            site.src,
            f"bandwidth_limit {rule.direction.value}",
            f"max_kbps={bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)} "
            f"max_burst_kbps={bits_to_kilobits(rule.max_burst_bits)} (kbit/s, kbit)",
        )
    )


def _bandwidth_rule(site: _RuleSite, rule: BandwidthLimitRule, entry: EffectiveLimit) -> None:
    """What holds for a bandwidth_limit rule on the path Neutron's agent takes for it."""
    kbps = bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)
    burst_kbit = bits_to_kilobits(rule.max_burst_bits)
    _declare_bandwidth(site, rule, entry)
    path = bandwidth_path(site.wiring, rule, site.facts)
    if path is BandwidthPath.SRIOV_NO_INGRESS:
        msg = "SR-IOV ports enforce no ingress bandwidth_limit (SR-IOV agent: egress only)"
        entry.losses.append(msg)
        site.eff.errors.append(Finding("not_enforceable", msg, site.dev, "bandwidth_limit.ingress"))
        return
    if path is BandwidthPath.SRIOV_VF_RATE:
        mbps = sriov_kbps_to_mbps(kbps)
        entry.candidates.append(
            Enforcement(
                "sriov-agent",
                "VF max_tx_rate",
                "police",
                f"max_tx_rate {mbps} (Mbit/s)",
                Rate(megabits_per_s_to_bits_per_s(mbps)),
            )
        )
        if burst_kbit:
            entry.losses.append("max_burst_kbps is ignored by the SR-IOV agent")
        if megabits_per_s_to_bits_per_s(mbps) != rule.max_rate_bits_per_s:
            entry.losses.append(f"max_kbps {kbps} rounds to {mbps} Mbit/s on the VF")
        return
    entry.candidates.append(_ovs_bandwidth(path, site, rule, entry, kbps, burst_kbit))


def _ovs_bandwidth(
    path: BandwidthPath,
    site: _RuleSite,
    rule: BandwidthLimitRule,
    entry: EffectiveLimit,
    kbps: KilobitsPerSecond,
    burst_kbit: Kilobits,
) -> Enforcement:
    wiring, facts, dev = site.wiring, site.facts, site.dev
    if path is BandwidthPath.METER:
        mid = meter_id(wiring.port.id, "bps", rule.direction)
        return Enforcement(
            "neutron-ovs",
            f"OpenFlow meter {mid} on {facts.ovs_bridge}",
            "meter",
            f"meter={mid},kbps,rate={kbps}" + (f",burst_size={burst_kbit}" if burst_kbit else ""),
            Rate(
                rule.max_rate_bits_per_s,
                burst_bytes=bits_to_bytes(rule.max_burst_bits) if burst_kbit else None,
            ),
        )
    if path is BandwidthPath.INGRESS_POLICING:
        burst = neutron_egress_burst_kbit(rule)
        if not burst_kbit:
            entry.losses.append(
                f"max_burst_kbps 0 becomes {burst} kbit (80% of max_kbps, Neutron's default)"
            )
        return Enforcement(
            "neutron-ovs",
            f"OVS Interface {dev} ingress_policing -> tc police on {dev}",
            "police",
            f"ingress_policing_rate={kbps} ingress_policing_burst={burst}",
            Rate(
                rule.max_rate_bits_per_s, burst_bytes=ovs_policing_burst_to_bytes(Kilobits(burst))
            ),
        )
    if path is BandwidthPath.EGRESS_POLICER:
        return Enforcement(
            "neutron-ovs",
            f"OVS QoS egress-policer on Port {dev}",
            "police",
            f"cir={bits_per_s_to_bytes_per_s(rule.max_rate_bits_per_s)} "
            f"cbs={bits_to_bytes(rule.max_burst_bits)} (bytes/s, bytes)",
            Rate(rule.max_rate_bits_per_s, burst_bytes=bits_to_bytes(rule.max_burst_bits)),
        )
    queue_burst = max(bits_to_bytes(rule.max_burst_bits), wiring.port.mtu_bytes + 64)
    return Enforcement(
        "neutron-ovs",
        f"OVS QoS linux-htb queue 0 on Port {dev} -> tc htb on {dev} root",
        "shape",
        f"Queue other_config:max-rate={rule.max_rate_bits_per_s} burst={rule.max_burst_bits} (bits)",
        Rate(rule.max_rate_bits_per_s, burst_bytes=queue_burst),
    )


def _packet_rate_rule(
    site: _RuleSite, rule: PacketRateLimitRule, extra: list[EffectiveLimit]
) -> None:
    wiring, facts, eff = site.wiring, site.facts, site.eff
    src, dev, sriov = site.src, site.dev, site.sriov
    direction = rule.direction.value
    entry = _extra(extra, dev, direction, "packet_rate", wiring.port.id)
    kpps = packets_per_s_to_kilopackets_per_s(rule.max_rate_packets_per_s)
    entry.declared.append(
        Declared(
            src,
            f"packet_rate_limit {direction}",
            f"max_kpps={kpps} max_burst_kpps={packets_to_kilopackets(rule.max_burst_packets)}",
        )
    )
    if sriov:
        msg = "packet_rate_limit is not supported on SR-IOV ports"
        entry.losses.append(msg)
        eff.errors.append(Finding("not_enforceable", msg, dev, "packet_rate_limit"))
        return
    mid = meter_id(wiring.port.id, "pps", rule.direction)
    entry.candidates.append(
        Enforcement(
            "neutron-ovs",
            f"OpenFlow meter {mid} on {facts.ovs_bridge}",
            "meter",
            f"meter={mid},pktps,rate={rule.max_rate_packets_per_s}",
            PacketRate(rule.max_rate_packets_per_s, rule.max_burst_packets),
        )
    )


def _dscp_rule(site: _RuleSite, rule: DscpMarkingRule, extra: list[EffectiveLimit]) -> None:
    wiring, facts, eff = site.wiring, site.facts, site.eff
    src, dev, sriov = site.src, site.dev, site.sriov
    entry = _extra(extra, dev, FROM_GUEST, "dscp", wiring.port.id)
    entry.declared.append(Declared(src, "dscp_marking", f"dscp_mark={rule.dscp_mark}"))
    if sriov:
        msg = "dscp_marking is not supported on SR-IOV ports"
        entry.losses.append(msg)
        eff.errors.append(Finding("not_enforceable", msg, dev, "dscp_marking"))
        return
    tos = dscp_to_tos(rule.dscp_mark)
    tos_only = facts.dscp_flows is DscpFlowStyle.MOD_NW_TOS
    entry.candidates.append(
        Enforcement(
            "neutron-ovs",
            f"OpenFlow table 0 flow for in_port={dev} on {facts.ovs_bridge}",
            "mark",
            f"mod_nw_tos:{tos}" if tos_only else f"set_field:{rule.dscp_mark}->ip_dscp",
            DscpMark(rule.dscp_mark, tos),
            note="IPv4 only" if tos_only else "",
        )
    )


# neutron_lib/placement/constants.py: the resource classes of a minimum bandwidth rule
_PLACEMENT_CLASS = {
    Direction.EGRESS: "NET_BW_EGR_KILOBIT_PER_SEC",
    Direction.INGRESS: "NET_BW_IGR_KILOBIT_PER_SEC",
}


def _min_bandwidth_rule(
    site: _RuleSite, rule: MinimumBandwidthRule, extra: list[EffectiveLimit]
) -> None:
    wiring, facts, eff = site.wiring, site.facts, site.eff
    src, dev, sriov = site.src, site.dev, site.sriov
    direction = rule.direction.value
    entry = _extra(extra, dev, direction, "min_bandwidth", wiring.port.id)
    kbps = bits_per_s_to_kilobits_per_s(rule.min_rate_bits_per_s)
    entry.declared.append(Declared(src, f"minimum_bandwidth {direction}", f"min_kbps={kbps}"))
    bridge = physical_bridge(wiring, facts)
    if rule.direction is Direction.EGRESS and bridge and not sriov:
        entry.candidates.append(
            Enforcement(
                "neutron-ovs",
                f"OVS Queue min-rate on the uplink of {bridge}",
                "guarantee",
                f"other_config:min-rate={rule.min_rate_bits_per_s}",
                MinRate(rule.min_rate_bits_per_s),
            )
        )
        return
    msg = (
        "minimum_bandwidth is placement-only here: the data plane guarantees only OVS "
        "egress on vlan/flat networks with a known physical bridge"
    )
    # What upstream does write: the port's resource request, which Placement honours
    # at scheduling and nothing enforces on the host.
    entry.candidates.append(
        Enforcement(
            "placement",
            f"the port's resource_request ({_PLACEMENT_CLASS[rule.direction]})",
            "guarantee",
            f"min_kbps={kbps}",
            MinRate(rule.min_rate_bits_per_s),
            holds=False,
            note=msg,
        )
    )
    entry.losses.append(msg)
    eff.warnings.append(Finding("placement_only", msg, dev, f"minimum_bandwidth.{direction}"))


def _min_packet_rate_rule(
    site: _RuleSite, rule: MinimumPacketRateRule, extra: list[EffectiveLimit]
) -> None:
    wiring, eff, src, dev = site.wiring, site.eff, site.src, site.dev
    direction = rule.direction.value
    entry = _extra(extra, dev, direction, "min_packet_rate", wiring.port.id)
    entry.declared.append(
        Declared(
            src,
            f"minimum_packet_rate {direction}",
            f"min_kpps={packets_per_s_to_kilopackets_per_s(rule.min_rate_packets_per_s)}",
        )
    )
    msg = "minimum_packet_rate is placement-only: no host enforces it"
    entry.losses.append(msg)
    eff.warnings.append(Finding("placement_only", msg, dev, f"minimum_packet_rate.{direction}"))


# ML2/OVN's physical-network path: ovn-controller makes an HTB queue on the physical
# interface and steers with set_queue, which only the kernel datapath honours.
_OVN_LSP_NOTE = "kernel datapath only: the userspace datapath ignores set_queue"


def _ovn_rules(
    site: _RuleSite, entries: dict[str, EffectiveLimit], extra: list[EffectiveLimit]
) -> None:
    """What holds for each rule on an OVN host: the NB rows and LSP options ML2/OVN writes
    (ovn.py), as ovn-controller enforces them."""
    wiring = site.wiring
    rows, lsp = ovn_plan((wiring,))
    row_of = {r.direction: r for r in rows}
    options = lsp[0] if lsp else None
    assert wiring.policy is not None
    for rule in wiring.policy.rules:
        match rule:
            case BandwidthLimitRule():
                _ovn_bandwidth(site, rule, entries[rule.direction.value], row_of, options)
            case DscpMarkingRule():
                entry = _extra(extra, site.dev, FROM_GUEST, "dscp", wiring.port.id)
                entry.declared.append(
                    Declared(site.src, "dscp_marking", f"dscp_mark={rule.dscp_mark}")
                )
                row = row_of["from-lport"]
                entry.candidates.append(
                    Enforcement(
                        "neutron-ovn",
                        f"NB QoS from-lport {row.priority} on {row.switch} -> ls_in_qos_mark",
                        "mark",
                        f"action:dscp={rule.dscp_mark}",
                        DscpMark(rule.dscp_mark, dscp_to_tos(rule.dscp_mark)),
                    )
                )
            case PacketRateLimitRule():
                entry = _extra(extra, site.dev, rule.direction.value, "packet_rate", wiring.port.id)
                kpps = packets_per_s_to_kilopackets_per_s(rule.max_rate_packets_per_s)
                entry.declared.append(
                    Declared(
                        site.src, f"packet_rate_limit {rule.direction.value}", f"max_kpps={kpps}"
                    )
                )
                msg = (
                    "packet_rate_limit is not supported by ML2/OVN: its QoS extension logs "
                    "'not supported in OVN' and writes nothing"
                )
                entry.losses.append(msg)
                site.eff.errors.append(
                    Finding("not_enforceable", msg, site.dev, "packet_rate_limit")
                )
            case MinimumBandwidthRule():
                _ovn_min_bandwidth(site, rule, extra, options)
            case MinimumPacketRateRule():
                _min_packet_rate_rule(site, rule, extra)


def _ovn_bandwidth(
    site: _RuleSite,
    rule: BandwidthLimitRule,
    entry: EffectiveLimit,
    row_of: dict[str, OvnQosRow],
    options: OvnLspQosOptions | None,
) -> None:
    _declare_bandwidth(site, rule, entry)
    burst_bytes = bits_to_bytes(rule.max_burst_bits) if rule.max_burst_bits else None
    egress = rule.direction is Direction.EGRESS
    if egress and options is not None and options.max_rate_bits_per_s is not None:
        entry.candidates.append(
            Enforcement(
                "neutron-ovn",
                f"LSP {site.wiring.port.id} options -> HTB queue on the physical interface",
                "shape",
                f"qos_max_rate={options.max_rate_bits_per_s}"
                + (f" qos_burst={options.burst_bits}" if options.burst_bits else "")
                + " (bit/s, bits)",
                Rate(rule.max_rate_bits_per_s, burst_bytes=burst_bytes),
                note=_OVN_LSP_NOTE,
            )
        )
        return
    row = row_of["from-lport" if egress else "to-lport"]
    table = "ls_in_qos_meter" if egress else "ls_out_qos_meter"
    entry.candidates.append(
        Enforcement(
            "neutron-ovn",
            f"NB QoS {row.direction} {row.priority} on {row.switch} -> meter in {table}",
            "police",
            f"bandwidth:rate={row.rate_kbit_per_s}"
            + (f" burst={row.burst_kbit}" if row.burst_kbit else "")
            + " (kbit/s, kbit)",
            Rate(rule.max_rate_bits_per_s, burst_bytes=burst_bytes),
        )
    )


def _ovn_min_bandwidth(
    site: _RuleSite,
    rule: MinimumBandwidthRule,
    extra: list[EffectiveLimit],
    options: OvnLspQosOptions | None,
) -> None:
    direction = rule.direction.value
    entry = _extra(extra, site.dev, direction, "min_bandwidth", site.wiring.port.id)
    kbps = bits_per_s_to_kilobits_per_s(rule.min_rate_bits_per_s)
    entry.declared.append(Declared(site.src, f"minimum_bandwidth {direction}", f"min_kbps={kbps}"))
    if rule.direction is Direction.INGRESS:
        msg = "ML2/OVN does not support minimum bandwidth rules enforcement with ingress direction"
        entry.losses.append(msg)
        site.eff.errors.append(
            Finding("not_enforceable", msg, site.dev, f"minimum_bandwidth.{direction}")
        )
        return
    if options is not None and options.min_rate_bits_per_s is not None:
        entry.candidates.append(
            Enforcement(
                "neutron-ovn",
                f"LSP {site.wiring.port.id} options -> HTB queue on the physical interface",
                "guarantee",
                f"qos_min_rate={options.min_rate_bits_per_s} (bit/s)",
                MinRate(rule.min_rate_bits_per_s),
                note=_OVN_LSP_NOTE,
            )
        )
        return
    msg = (
        "minimum_bandwidth is placement-only here: OVN QoS rows have no minimum rate, and "
        "ML2/OVN guarantees egress only on flat and VLAN networks"
    )
    entry.losses.append(msg)
    site.eff.warnings.append(
        Finding("placement_only", msg, site.dev, f"minimum_bandwidth.{direction}")
    )


def _extra(
    extra: list[EffectiveLimit], device: str, direction: str, kind: str, port_id: str
) -> EffectiveLimit:
    entry = EffectiveLimit(device, direction, kind, port_id=port_id)
    extra.append(entry)
    return entry


def _owners_check(wiring: PortWiring, entry: EffectiveLimit, eff: Effective) -> None:
    layers = {c.layer for c in entry.holding() if c.mechanism in ("shape", "police", "meter")}
    if len(layers) < 2:
        return
    strict = entry.effective()
    same_device = wiring.ovs_port == wiring.guest_device
    how = (
        "both program the same device, so the last writer wins; qosplane's agent applies one "
        "program"
        if same_device
        else "they act in series"
    )
    msg = (
        f"the flavor VIF quota and the Neutron policy both limit {entry.direction} traffic of "
        f"{wiring.guest_device}: {how} and the stricter "
        f"{strict.limit.get('rate_bits_per_s') if strict else '?'} bit/s holds"
    )
    entry.conflicts.append(msg)
    eff.warnings.append(Finding("double_limit", msg, wiring.guest_device))


def network_effective(
    wiring: PortWiring, flavor: Flavor, facts: HostFacts, eff: Effective
) -> list[EffectiveLimit]:
    dev = wiring.guest_device or wiring.port.id
    entries = {
        TO_GUEST: EffectiveLimit(dev, TO_GUEST, "bandwidth", port_id=wiring.port.id),
        FROM_GUEST: EffectiveLimit(dev, FROM_GUEST, "bandwidth", port_id=wiring.port.id),
    }
    extra: list[EffectiveLimit] = []
    _flavor_vif(wiring, flavor, entries, eff)
    _neutron_rules(wiring, facts, entries, extra, eff)
    out: list[EffectiveLimit] = []
    for entry in entries.values():
        if not entry.declared:
            continue
        _owners_check(wiring, entry, eff)
        for cand in entry.candidates:
            _tcp_burst_checks(entry, cand, wiring.port.mtu_bytes, facts, eff)
        out.append(entry)
    return out + extra


# --- disks --------------------------------------------------------------------------------

_DISK_KINDS: dict[str, tuple[str, str, str]] = {
    # IoTune field -> (direction, kind, canonical key)
    "read_bytes_per_s": ("read", "disk_bytes", "bytes_per_s"),
    "write_bytes_per_s": ("write", "disk_bytes", "bytes_per_s"),
    "total_bytes_per_s": ("total", "disk_bytes", "bytes_per_s"),
    "read_iops": ("read", "disk_iops", "iops"),
    "write_iops": ("write", "disk_iops", "iops"),
    "total_iops": ("total", "disk_iops", "iops"),
}
_MAX_FIELD = {
    "read_bytes_per_s": "read_bytes_per_s_max",
    "write_bytes_per_s": "write_bytes_per_s_max",
    "total_bytes_per_s": "total_bytes_per_s_max",
    "read_iops": "read_iops_max",
    "write_iops": "write_iops_max",
    "total_iops": "total_iops_max",
}
_OPTION = dict(THROTTLING_OPTIONS)


def _declared_key(disk: DiskWiring, field_name: str) -> str:
    element = IOTUNE_ELEMENTS[field_name]
    return f"quota:disk_{element}" if disk.kind == "image" else element


def disk_effective(disk: DiskWiring, eff: Effective) -> list[EffectiveLimit]:
    out = []
    tune = disk.iotune
    for field_name, (direction, kind, unit_key) in _DISK_KINDS.items():
        value = getattr(tune, field_name)
        if value is None:
            continue
        entry = EffectiveLimit(disk.target, direction, kind)
        entry.declared.append(
            Declared(
                disk.declared_by,
                _declared_key(disk, field_name),
                f"{value} {'bytes/s' if unit_key == 'bytes_per_s' else 'IOPS'}",
            )
        )
        if value == 0:
            entry.losses.append("0 means unlimited in QEMU; libvirt does not pass it on")
            out.append(entry)
            continue
        peak = getattr(tune, _MAX_FIELD[field_name])
        lim: Limit = (
            DiskBytes(value, peak or None)
            if unit_key == "bytes_per_s"
            else DiskIops(value, peak or None)
        )
        note = (
            f"bursts to {peak} for 1 s"
            if peak
            else "bucket of 1/10 s of the average allows short bursts"
        )
        entry.candidates.append(
            Enforcement(
                "qemu",
                f"{_OPTION[field_name]} on {disk.drive_id}",
                "throttle",
                f"{_OPTION[field_name]}={value}",
                lim,
                note=note,
            )
        )
        out.append(entry)
    return out


# --- cpu ----------------------------------------------------------------------------------


def cpu_effective(flavor: Flavor, facts: HostFacts, eff: Effective) -> list[EffectiveLimit]:
    cpu = effective_cputune(flavor.qos.cpu, flavor.vcpus, facts)
    out = []
    v2 = facts.cgroup is CgroupVersion.V2
    for problem in cgroup_problems(cpu, v2):
        target = eff.errors if problem.fatal else eff.warnings
        target.append(Finding(problem.code, problem.message, "cpu", problem.key))
    if cpu.shares is not None:
        entry = EffectiveLimit("cpu", "", "cpu_shares")
        if flavor.qos.cpu.shares is not None:
            entry.declared.append(
                Declared(f"flavor {flavor.name}", "quota:cpu_shares", str(cpu.shares))
            )
        elif facts.nova_shares_default is NovaSharesDefault.PER_VCPU_1024:
            entry.declared.append(
                Declared("Nova default (Liberty..Yoga)", "1024 x vCPUs", str(cpu.shares))
            )
        if v2:
            ratio = relative_cpu_share(cpu.shares, CGROUP_V2_DEFAULT_WEIGHT)
            entry.candidates.append(
                Enforcement(
                    "cgroup",
                    "cpu.weight of the machine scope",
                    "weight",
                    f"cpu.weight={cpu.shares}",
                    CpuWeight(cpu.shares),
                    holds=not any(p.fatal for p in cgroup_problems(cpu, True)),
                    note=f"{ratio:.2f}x a sibling at the default weight {CGROUP_V2_DEFAULT_WEIGHT}",
                )
            )
            v1_ratio = relative_cpu_share(cpu.shares, CGROUP_V1_DEFAULT_SHARES)
            if abs(ratio - v1_ratio) > 1e-9:
                msg = (
                    f"cpu_shares {cpu.shares} was {v1_ratio:.2f}x a default guest on cgroup v1 "
                    f"but is {ratio:.2f}x on cgroup v2 (libvirt writes it unconverted as "
                    "cpu.weight)"
                )
                entry.losses.append(msg)
                eff.warnings.append(
                    Finding("cpu_weight_meaning_changes", msg, "cpu", "quota:cpu_shares")
                )
        else:
            entry.candidates.append(
                Enforcement(
                    "cgroup",
                    "cpu.shares of the machine scope",
                    "weight",
                    f"cpu.shares={cpu.shares}",
                    CpuWeight(cpu.shares),
                    holds=not any(p.fatal for p in cgroup_problems(cpu, False)),
                    note=f"{relative_cpu_share(cpu.shares, CGROUP_V1_DEFAULT_SHARES):.2f}x a sibling "
                    f"at the default {CGROUP_V1_DEFAULT_SHARES}",
                )
            )
        out.append(entry)
    if cpu.quota_us is not None and cpu.quota_us > 0:
        entry = EffectiveLimit("cpu", "", "cpu_quota")
        period = cpu.period_us or 100_000
        entry.declared.append(
            Declared(f"flavor {flavor.name}", "quota:cpu_quota", f"{cpu.quota_us} us")
        )
        if cpu.period_us is not None:
            entry.declared.append(
                Declared(f"flavor {flavor.name}", "quota:cpu_period", f"{cpu.period_us} us")
            )
        per_mille = cpu.quota_us * 1000 // period
        entry.candidates.append(
            Enforcement(
                "cgroup",
                "each vCPU thread's cgroup",
                "quota",
                f"cpu.max={cpu.quota_us} {period}"
                if v2
                else f"cpu.cfs_quota_us={cpu.quota_us} cpu.cfs_period_us={period}",
                CpuQuota(cpu.quota_us, period, per_mille),
                note="per vCPU, not per instance",
            )
        )
        out.append(entry)
    return out


def volume_findings(instance: Instance, eff: Effective) -> None:
    flavor_disk = not instance.flavor.qos.disk.is_empty()
    for volume in instance.volumes:
        qos = volume.qos
        if not qos.consumer.reaches_host and qos.per_gb_keys:
            eff.warnings.append(
                Finding(
                    "per_gb_back_end",
                    f"volume {volume.id}: {', '.join(qos.per_gb_keys)} with consumer "
                    f"{qos.consumer.value}: nothing reaches the host (only front-end and both "
                    "specs travel in connection_info)",
                    volume.id,
                    qos.per_gb_keys[0],
                )
            )
        elif qos.consumer.reaches_host and qos.ignored_keys:
            eff.warnings.append(
                Finding(
                    "spec_keys_ignored",
                    f"volume {volume.id}: Nova's volume driver ignores {', '.join(qos.ignored_keys)}",
                    volume.id,
                    qos.ignored_keys[0],
                )
            )
        if flavor_disk:
            eff.warnings.append(
                Finding(
                    "flavor_disk_quota_not_on_volumes",
                    f"volume {volume.id}: the flavor's quota:disk_* limits do not apply to volumes "
                    "(Nova applies them to image-backed disks only)",
                    volume.id,
                )
            )


def compute_effective(
    instance: Instance,
    facts: HostFacts,
    ports: tuple[PortWiring, ...],
    disks: tuple[DiskWiring, ...],
) -> Effective:
    eff = Effective()
    eff.limits += cpu_effective(instance.flavor, facts, eff)
    for disk in disks:
        eff.limits += disk_effective(disk, eff)
    volume_findings(instance, eff)
    for wiring in ports:
        eff.limits += network_effective(wiring, instance.flavor, facts, eff)
    for key in instance.flavor.qos.ignored_keys:
        eff.warnings.append(
            Finding(
                "quota_key_ignored",
                f"{key} is accepted by Nova but only the VMware driver reads it",
                "",
                key,
            )
        )
    return eff


__all__ = ["Bytes", "BytesPerSecond", "Effective", "EffectiveLimit", "compute_effective"]
