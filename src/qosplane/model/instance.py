"""One instance's intent: flavor, ports with their policies, volumes with their specs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from qosplane.model.flavor import Flavor
from qosplane.model.network_qos import QosPolicy, effective_policy
from qosplane.model.volume_qos import VolumeQos


class VifType(enum.Enum):
    """How a port reaches the guest; decides which device carries which limit.

    BRIDGE: `<interface type='bridge'>` + OVS virtualport, tap in br-int (the seed, Nova
    before Xena). ETHERNET: `type='ethernet'` tap plugged by os-vif (Nova >= 24.0.0 OVS).
    HYBRID: tap in a qbr Linux bridge, qvb/qvo veth into br-int (iptables_hybrid).
    DIRECT: macvtap (SR-IOV vnic macvtap). HOSTDEV: SR-IOV VF passthrough.
    VHOSTUSER: OVS-DPDK vhost-user socket.
    """

    BRIDGE = "bridge"
    ETHERNET = "ethernet"
    HYBRID = "hybrid"
    DIRECT = "direct"
    HOSTDEV = "hostdev"
    VHOSTUSER = "vhostuser"


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    mac: str
    vif_type: VifType | None = None  # None = the host's default
    network_id: str = ""
    network_name: str = ""
    ip_addresses: tuple[str, ...] = ()
    device_owner: str = "compute:nova"
    network_type: str = ""  # vlan, flat, vxlan, geneve, ...
    physical_network: str = ""
    mtu_bytes: int = 1500
    qos_policy: QosPolicy | None = None
    network_qos_policy: QosPolicy | None = None

    def effective_policy(self) -> tuple[QosPolicy | None, str]:
        return effective_policy(self.qos_policy, self.network_qos_policy, self.device_owner)

    @property
    def tap_name(self) -> str:
        """Nova's device name: ('tap' + port id) cut to 14 characters."""
        return ("tap" + self.id)[:14]

    def prefixed_name(self, prefix: str) -> str:
        return (prefix + self.id)[:14]


@dataclass(frozen=True, slots=True)
class Volume:
    id: str
    size_gb: int
    qos: VolumeQos = field(default_factory=VolumeQos)
    name: str = ""
    volume_type: str = ""


@dataclass(frozen=True, slots=True)
class Instance:
    uuid: str
    name: str  # libvirt domain name, e.g. instance-00000041
    flavor: Flavor
    display_name: str = ""
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    image_id: str = ""
    project_id: str = ""
    project_name: str = ""
    user_id: str = ""
    user_name: str = ""
    creation_time: str = ""  # as Nova writes it into metadata; no clock in the compiler
