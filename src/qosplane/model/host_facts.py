"""What a compiler needs to know about the host: versions and behaviours that change output.

Defaults are the seed's host: RHOSP 12 (Nova 16, libvirt 3.x), cgroup v1, OVS ports as
`type='bridge'` taps in br-int, libvirt applying `<bandwidth>` with tc, Neutron marking
DSCP with mod_nw_tos.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qosplane.model.instance import VifType


class CgroupVersion(enum.Enum):
    V1 = "v1"
    V2 = "v2"


class LibvirtBandwidthBackend(enum.Enum):
    """How libvirt applies `<bandwidth>` on an OVS port.

    TC: virNetDevBandwidthSet (libvirt 5.6 and older, the seed). OVS: newer libvirt's
    virNetDevOpenvswitchInterfaceSetQos, where inbound average becomes an HTB min-rate.
    """

    TC = "tc"
    OVS = "ovs"


class DscpFlowStyle(enum.Enum):
    """Neutron's DSCP flows: mod_nw_tos via ovs-ofctl (before 16.0.0, the seed) or the
    native set_field flows for IPv4 and IPv6 (16.0.0 onward)."""

    MOD_NW_TOS = "mod_nw_tos"
    SET_FIELD = "set_field"


class NovaSharesDefault(enum.Enum):
    """Liberty..Yoga always wrote shares = 1024 * vCPUs; Zed onward writes none."""

    PER_VCPU_1024 = "1024_per_vcpu"
    NONE = "none"


class NeutronBackend(enum.Enum):
    """The ML2 mechanism driver that enforces the host's Neutron QoS: the Open vSwitch
    agent (the seed) or OVN, where Neutron writes NB rows and ovn-controller turns them
    into OpenFlow meters and marks."""

    OPENVSWITCH = "openvswitch"
    OVN = "ovn"


@dataclass(frozen=True, slots=True)
class HostFacts:
    hostname: str = "comp-1.ngpf.local"
    vif_type: VifType = VifType.BRIDGE
    ovs_bridge: str = "br-int"
    cgroup: CgroupVersion = CgroupVersion.V1
    libvirt_bandwidth: LibvirtBandwidthBackend = LibvirtBandwidthBackend.TC
    dscp_flows: DscpFlowStyle = DscpFlowStyle.MOD_NW_TOS
    nova_shares_default: NovaSharesDefault = NovaSharesDefault.PER_VCPU_1024
    neutron_meter_bandwidth: bool = False  # [ovs] qos_meter_bandwidth
    neutron_backend: NeutronBackend = NeutronBackend.OPENVSWITCH
    virt_type: str = "kvm"
    emulator: str = "/usr/libexec/qemu-kvm"
    machine_type: str = "pc-i440fx-rhel7.4.0"
    instances_path: str = "/var/lib/nova/instances"
    nova_version: str = "16.0.2-9.el7ost"
    # Round-trip time a TCP flow through a policer is expected to see; the burst check
    # asks for at least one bandwidth-delay product at this RTT.
    tcp_reference_rtt_ms: int = 20
    # physical network name -> the OVS bridge carrying it (minimum bandwidth queues)
    physical_bridges: tuple[tuple[str, str], ...] = ()
