"""The enforcement backends, in the order they are asked about each limit: the first that
answers owns it. Adding a backend is one module under backends/ and one line here.

The order is the host's preference: a libvirt domain holds its own CPU and image-disk
limits; on an OVS or OVN host the switch holds every network limit; otherwise tc, the ifb and
nftables do; cgroups hold the CPU of instances that are not domains; QEMU's storage
daemon holds each exported volume's."""

from __future__ import annotations

from qosplane.compiler.enforcement.backends.cgroups import CgroupCpu
from qosplane.compiler.enforcement.backends.libvirt_domain import LibvirtDomain
from qosplane.compiler.enforcement.backends.nft_bridge import NftDscp, NftPacketRate
from qosplane.compiler.enforcement.backends.ovn import OvnBackend
from qosplane.compiler.enforcement.backends.ovs import OvsBackend
from qosplane.compiler.enforcement.backends.qemu_storage import QemuThrottle
from qosplane.compiler.enforcement.backends.tc import IfbShaper, TcShaper
from qosplane.compiler.enforcement.backends.uplink import UplinkGuarantee
from qosplane.compiler.enforcement.base import Backend

BACKENDS: tuple[Backend, ...] = (
    LibvirtDomain(),
    OvsBackend(),
    OvnBackend(),
    TcShaper(),
    IfbShaper(),
    NftDscp(),
    NftPacketRate(),
    UplinkGuarantee(),
    CgroupCpu(),
    QemuThrottle(),
)

# Why a limit no backend takes holds nowhere on a qosplane host.
PLACEMENT_ONLY = {
    "min_bandwidth": "minimum bandwidth is a placement guarantee here; no queue enforces it",
    "min_packet_rate": "minimum packet rate is placement-only upstream as well",
}
NO_IMAGE_DISK = "a netns instance has no image disk: only volumes are exported"


def unenforced_reason(kind: str, direction: str) -> str:
    if kind in PLACEMENT_ONLY:
        return PLACEMENT_ONLY[kind]
    if kind.startswith("disk"):
        return NO_IMAGE_DISK
    return f"no mechanism for {kind} {direction}"
