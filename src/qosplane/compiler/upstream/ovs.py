"""Open vSwitch configuration: what Neutron's OVS agent sets for a port's QoS policy, and
what newer libvirt sets for `<bandwidth>` on an OVS port.

Neutron (neutron/plugins/ml2/drivers/openvswitch/agent/extension_drivers/qos_driver.py,
neutron/agent/common/ovs_lib.py):
- egress bandwidth_limit -> Interface ingress_policing_rate/burst (burst 0 -> 80% of rate);
- ingress bandwidth_limit -> a linux-htb QoS with queue 0 (max-rate, burst in bits) on the
  Port, and the bridge flow sending traffic to queue 0; DPDK ports get an egress-policer;
- meter mode ([ovs] qos_meter_bandwidth) and packet_rate_limit -> OpenFlow 1.3 meters;
- dscp_marking -> a table-0 flow rewriting the DSCP (mod_nw_tos before neutron 16.0.0);
- minimum_bandwidth egress -> a queue with min-rate on the physical bridge uplink.
Every flow carries a cookie derived from the port id so the agent can find its own flows.
"""

from __future__ import annotations

import hashlib

from qosplane.compiler.upstream.neutron_paths import BandwidthPath, bandwidth_path
from qosplane.compiler.upstream.tc import device_sides, libvirt_kbps, libvirt_kib
from qosplane.compiler.upstream.topology import PortWiring
from qosplane.model.flavor import FlavorQos
from qosplane.model.host_facts import (
    DscpFlowStyle,
    HostFacts,
    LibvirtBandwidthBackend,
    NeutronBackend,
)
from qosplane.model.network_qos import (
    BandwidthLimitRule,
    Direction,
    DscpMarkingRule,
    MinimumBandwidthRule,
    PacketRateLimitRule,
)
from qosplane.model.units import (
    BitsPerSecond,
    bits_per_s_to_bytes_per_s,
    bits_per_s_to_kilobits_per_s,
    bits_to_bytes,
    bits_to_kilobits,
    dscp_to_tos,
    kilobytes_per_s_to_bits_per_s,
    libvirt_kib_to_ovs_policing_kbit,
    libvirt_kilobytes_per_s_to_ovs_policing_kbit,
    libvirt_ovs_kib_to_bits,
    neutron_default_egress_burst,
)

Argv = list[str]

OVS_MAX_RATE_BITS_PER_S = BitsPerSecond(2**35 - 1)  # neutron ovs_lib OVS_MAX_RATE
TABLE_PACKET_RATE_LIMIT = 58
TABLE_BANDWIDTH_RATE_LIMIT = 59
TABLE_TRANSIENT = 60
# Old neutron marks a port's packets as DSCP-processed with this register value (the seed
# shows load:0x37->NXM_NX_REG2[0..5]).
NEUTRON_DSCP_REG2_MARK = 55


def port_cookie(port_id: str, kind: str) -> str:
    """A stable 64-bit flow cookie per (port, purpose): the agent's ownership tag."""
    digest = hashlib.blake2b(f"{port_id}/{kind}".encode(), digest_size=8).hexdigest()
    return "0x" + digest


def meter_id(port_id: str, kind: str, direction: Direction) -> int:
    """A stable meter id in [1, 2**31): Neutron picks random ids and stores them in the
    port's other_config; a hash of (port, kind, direction) makes the plan reproducible."""
    digest = hashlib.blake2b(f"{port_id}/{kind}/{direction.value}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1) + 1


def neutron_egress_burst_kbit(rule: BandwidthLimitRule) -> int:
    kbps = bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)
    burst = bits_to_kilobits(rule.max_burst_bits)
    return burst if burst else neutron_default_egress_burst(kbps)


def _flow(port: str, kind: str, match: str, actions: str) -> str:
    return f"cookie={port_cookie(port, kind)},{match},actions={actions}"


def _bandwidth_limit(wiring: PortWiring, rule: BandwidthLimitRule, facts: HostFacts) -> list[Argv]:
    """The argv for the path Neutron's agent takes (neutron_paths.bandwidth_path)."""
    path = bandwidth_path(wiring, rule, facts)
    if path is BandwidthPath.METER:
        return _meter_argv(wiring, rule, facts)
    if path is BandwidthPath.INGRESS_POLICING:
        return [
            [
                "ovs-vsctl",
                "set",
                "Interface",
                wiring.ovs_port,
                f"ingress_policing_rate={bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)}",
                f"ingress_policing_burst={neutron_egress_burst_kbit(rule)}",
            ]
        ]
    if path is BandwidthPath.EGRESS_POLICER:
        return [_egress_policer_argv(wiring.ovs_port, rule)]
    if path is BandwidthPath.LINUX_HTB_QUEUE:
        return _linux_htb_argv(wiring.ovs_port, rule, facts)
    return []  # SR-IOV: the SR-IOV agent's VF, not an OVS port


def _meter_argv(wiring: PortWiring, rule: BandwidthLimitRule, facts: HostFacts) -> list[Argv]:
    pid = wiring.port.id
    mid = meter_id(pid, "bps", rule.direction)
    kbps = bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)
    burst = bits_to_kilobits(rule.max_burst_bits)
    flags = "kbps,burst,stats" if burst else "kbps,stats"
    band = f"type=drop,rate={kbps}" + (f",burst_size={burst}" if burst else "")
    match = (
        f"table={TABLE_BANDWIDTH_RATE_LIMIT},priority=100,in_port={wiring.ovs_port},dl_src={wiring.port.mac}"
        if rule.direction is Direction.EGRESS
        else f"table={TABLE_BANDWIDTH_RATE_LIMIT},priority=100,dl_dst={wiring.port.mac}"
    )
    actions = f"meter:{mid},goto_table:{TABLE_TRANSIENT}"
    of13 = ["ovs-ofctl", "-O", "OpenFlow13"]
    return [
        [*of13, "add-meter", facts.ovs_bridge, f"meter={mid},{flags},bands={band}"],
        [
            *of13,
            "add-flow",
            facts.ovs_bridge,
            _flow(pid, f"bps-{rule.direction.value}", match, actions),
        ],
    ]


def _egress_policer_argv(port: str, rule: BandwidthLimitRule) -> Argv:
    return [
        "ovs-vsctl",
        "--",
        "--id=@qos",
        "create",
        "QoS",
        "type=egress-policer",
        f"other_config:cir={bits_per_s_to_bytes_per_s(rule.max_rate_bits_per_s)}",
        f"other_config:cbs={bits_to_bytes(rule.max_burst_bits)}",
        f"external_ids:id={port}",
        "external_ids:_type=bandwidth_limit",
        "--",
        "set",
        "Port",
        port,
        "qos=@qos",
    ]


def _linux_htb_argv(port: str, rule: BandwidthLimitRule, facts: HostFacts) -> list[Argv]:
    queue = [
        "--id=@queue",
        "create",
        "Queue",
        f"other_config:max-rate={rule.max_rate_bits_per_s}",
        f"other_config:burst={rule.max_burst_bits}",
        f"external_ids:port={port}",
        "external_ids:type=bandwidth_limit",
        "external_ids:queue-num=0",
    ]
    qos = [
        "--id=@qos",
        "create",
        "QoS",
        "type=linux-htb",
        f"other_config:max-rate={OVS_MAX_RATE_BITS_PER_S}",
        "queues:0=@queue",
        f"external_ids:id={port}",
        "external_ids:_type=bandwidth_limit",
    ]
    return [
        ["ovs-vsctl", "--", *queue, "--", *qos, "--", "set", "Port", port, "qos=@qos"],
        [
            "ovs-ofctl",
            "add-flow",
            facts.ovs_bridge,
            "cookie=0x0,table=0,priority=200,reg3=0,"
            "actions=set_queue:0,load:1->NXM_NX_REG3[0],resubmit(,0)",
        ],
    ]


def _packet_rate_limit(
    wiring: PortWiring, rule: PacketRateLimitRule, facts: HostFacts
) -> list[Argv]:
    pid = wiring.port.id
    mid = meter_id(pid, "pps", rule.direction)
    burst = rule.max_burst_packets
    flags = "pktps,burst,stats" if burst else "pktps,stats"
    band = f"type=drop,rate={rule.max_rate_packets_per_s}" + (
        f",burst_size={burst}" if burst else ""
    )
    match = (
        f"table={TABLE_PACKET_RATE_LIMIT},priority=100,in_port={wiring.ovs_port},dl_src={wiring.port.mac}"
        if rule.direction is Direction.EGRESS
        else f"table={TABLE_PACKET_RATE_LIMIT},priority=100,dl_dst={wiring.port.mac}"
    )
    return [
        [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "add-meter",
            facts.ovs_bridge,
            f"meter={mid},{flags},bands={band}",
        ],
        [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "add-flow",
            facts.ovs_bridge,
            _flow(
                pid,
                f"pps-{rule.direction.value}",
                match,
                f"meter:{mid},goto_table:{TABLE_BANDWIDTH_RATE_LIMIT}",
            ),
        ],
    ]


def _dscp(wiring: PortWiring, rule: DscpMarkingRule, facts: HostFacts) -> list[Argv]:
    pid = wiring.port.id
    port = wiring.ovs_port
    if facts.dscp_flows is DscpFlowStyle.MOD_NW_TOS:
        return [
            [
                "ovs-ofctl",
                "add-flow",
                facts.ovs_bridge,
                _flow(
                    pid,
                    "dscp",
                    f"table=0,priority=65535,reg2=0,in_port={port}",
                    f"mod_nw_tos:{dscp_to_tos(rule.dscp_mark)},"
                    f"load:{NEUTRON_DSCP_REG2_MARK}->NXM_NX_REG2[0..5],resubmit(,0)",
                ),
            ]
        ]
    return [
        [
            "ovs-ofctl",
            "add-flow",
            facts.ovs_bridge,
            _flow(
                pid,
                "dscp",
                f"table=0,priority=65535,reg2=0,in_port={port},{proto}",
                f"set_field:1->reg2,set_field:{rule.dscp_mark}->ip_dscp,resubmit(,0)",
            ),
        ]
        for proto in ("ip", "ipv6")
    ]


def physical_bridge(wiring: PortWiring, facts: HostFacts) -> str:
    if wiring.port.network_type not in ("vlan", "flat") or not wiring.port.physical_network:
        return ""
    return dict(facts.physical_bridges).get(wiring.port.physical_network, "")


def _minimum_bandwidth(
    wiring: PortWiring, rule: MinimumBandwidthRule, facts: HostFacts
) -> list[Argv]:
    bridge = physical_bridge(wiring, facts)
    if rule.direction is not Direction.EGRESS or not bridge:
        return []
    pid = wiring.port.id
    mark = meter_id(pid, "minbw", rule.direction) % 65534 + 1
    return [
        [
            "ovs-vsctl",
            "--",
            "--id=@queue",
            "create",
            "Queue",
            f"other_config:min-rate={rule.min_rate_bits_per_s}",
            f"other_config:max-rate={OVS_MAX_RATE_BITS_PER_S}",
            f"external_ids:port={pid}",
            "external_ids:type=minimum_bandwidth",
            f"external_ids:queue-num={mark}",
        ],
        [
            "ovs-ofctl",
            "add-flow",
            facts.ovs_bridge,
            _flow(
                pid,
                "minbw",
                f"table=0,priority=200,reg4=0,in_port={wiring.ovs_port}",
                f"set_field:{mark}->pkt_mark,load:1->NXM_NX_REG4[0],resubmit(,0)",
            ),
        ],
        [
            "ovs-ofctl",
            "add-flow",
            bridge,
            _flow(
                pid,
                "minbw-uplink",
                f"table=0,priority=200,reg4=0,pkt_mark={mark}",
                f"set_queue:{mark},load:1->NXM_NX_REG4[0],resubmit(,0)",
            ),
        ],
    ]


def neutron_ovs_commands(wiring: PortWiring, facts: HostFacts) -> list[Argv]:
    """What the OVS agent configures for this port's effective policy (nothing on an OVN
    host: there ML2/OVN writes NB rows instead, ovn.py)."""
    if wiring.policy is None or not wiring.ovs_port or facts.neutron_backend is NeutronBackend.OVN:
        return []
    cmds: list[Argv] = []
    for rule in wiring.policy.rules:
        if isinstance(rule, BandwidthLimitRule):
            cmds += _bandwidth_limit(wiring, rule, facts)
        elif isinstance(rule, PacketRateLimitRule):
            cmds += _packet_rate_limit(wiring, rule, facts)
        elif isinstance(rule, DscpMarkingRule):
            cmds += _dscp(wiring, rule, facts)
        elif isinstance(rule, MinimumBandwidthRule):
            cmds += _minimum_bandwidth(wiring, rule, facts)
    return cmds


def libvirt_ovs_commands(wiring: PortWiring, qos: FlavorQos, vm_uuid: str) -> list[Argv]:
    """Newer libvirt's virNetDevOpenvswitchInterfaceSetQos for `<bandwidth>` on an OVS port."""
    if (
        wiring.libvirt_backend is not LibvirtBandwidthBackend.OVS
        or not wiring.nova_writes_bandwidth
        or (qos.vif_inbound is None and qos.vif_outbound is None)
    ):
        return []
    dev = wiring.guest_device
    ext = [f'external-ids:vm-id="{vm_uuid}"', f'external-ids:ifname="{dev}"']
    sides = device_sides(wiring, qos)
    cmds: list[Argv] = []
    tx = sides.tx
    if tx is not None and tx.average_bytes_per_s != 0:
        rate = [
            f"other_config:min-rate={kilobytes_per_s_to_bits_per_s(libvirt_kbps(tx.average_bytes_per_s))}"
        ]
        if tx.burst_bytes is not None:
            rate.append(
                f"other_config:burst={libvirt_ovs_kib_to_bits(libvirt_kib(tx.burst_bytes))}"
            )
        if tx.peak_bytes_per_s is not None:
            rate.append(
                f"other_config:max-rate={kilobytes_per_s_to_bits_per_s(libvirt_kbps(tx.peak_bytes_per_s))}"
            )
        cmds.append(
            [
                "ovs-vsctl",
                "--timeout=5",
                "set",
                "port",
                dev,
                "qos=@qos1",
                *ext,
                "--",
                "--id=@qos1",
                "create",
                "qos",
                "type=linux-htb",
                *rate,
                "queues:0=@queue0",
                *ext,
                "--",
                "--id=@queue0",
                "create",
                "queue",
                *rate,
                *ext,
            ]
        )
    rx = sides.rx
    if rx is None:
        cmds.append(
            [
                "ovs-vsctl",
                "--timeout=5",
                "set",
                "Interface",
                dev,
                "ingress_policing_rate=0",
                "ingress_policing_burst=0",
            ]
        )
    else:
        args = [
            f"ingress_policing_rate={libvirt_kilobytes_per_s_to_ovs_policing_kbit(libvirt_kbps(rx.average_bytes_per_s))}"
        ]
        if rx.burst_bytes:
            args.append(
                f"ingress_policing_burst={libvirt_kib_to_ovs_policing_kbit(libvirt_kib(rx.burst_bytes))}"
            )
        cmds.append(["ovs-vsctl", "--timeout=5", "set", "Interface", dev, *args])
    return cmds


def ovs_plan(
    ports: tuple[PortWiring, ...], qos: FlavorQos, facts: HostFacts, vm_uuid: str
) -> list[Argv]:
    cmds: list[Argv] = []
    seen: set[str] = set()
    for wiring in ports:
        for argv in libvirt_ovs_commands(wiring, qos, vm_uuid) + neutron_ovs_commands(
            wiring, facts
        ):
            # The queue-0 flow is bridge-wide: once per plan is enough.
            text = "\x00".join(argv)
            if argv[0] == "ovs-ofctl" and "reg3=0" in argv[-1]:
                if text in seen:
                    continue
                seen.add(text)
            cmds.append(argv)
    return cmds
