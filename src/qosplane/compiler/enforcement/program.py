"""From a plan's effective limits to what this host enforces.

The plan says what holds on the upstream stack (libvirt's htb and police, Neutron's OVS
rows). A host agent enforces the same guest-relative limits with what its host has (the
probe's Capabilities): each limit goes to the first backend of the registry that takes it,
and the outcome says which mechanism holds it, or why none does. Pure: no I/O; the agent
observes, the backends decide.

The renderings each host driver needs (tc lines, OVS flows, the nftables ruleset) live with
their backend; they are re-exported here, this room's front door.
"""

from __future__ import annotations

from collections.abc import Sequence

from qosplane.compiler.enforcement.backends import (
    cgroups,
    libvirt_domain,
    ovn,
    ovs,
    qemu_storage,
    tc,
    uplink,
)
from qosplane.compiler.enforcement.backends.nft_bridge import (
    NFT_DEVICE_MATCH,
    NFT_MIN_BURST_PACKETS,
    bridge_ruleset,
)
from qosplane.compiler.enforcement.backends.ovn import (
    OVN_BANDWIDTH_MAX_KBIT,
    meter_shaper,
    ovn_row_text,
    ovn_rows,
    port_qos_of_rows,
)
from qosplane.compiler.enforcement.backends.ovs import (
    OVS_BASE_COOKIE,
    OVS_COOKIE_MASK,
    OVS_COOKIE_MATCH,
    OVS_COOKIE_TAG,
    OVS_METADATA_MASK,
    OVS_TABLE_BANDWIDTH_FROM,
    OVS_TABLE_PACKETS_FROM,
    OVS_TABLE_TO,
    openflow_changes,
    ovs_base_flows,
    ovs_flow_text,
    ovs_meter,
    ovs_meter_ids,
    ovs_meter_spec,
    ovs_port_cookie,
    ovs_port_flows,
    ovs_port_meters,
    ovs_queue,
)
from qosplane.compiler.enforcement.backends.tc import (
    device_commands,
    parse_htb_class,
    redirect_commands,
    root_commands,
    same_shaper,
)
from qosplane.compiler.enforcement.backends.uplink import (
    UPLINK_DEFAULT_MINOR,
    Wanted,
    admit,
    uplink_lines,
)
from qosplane.compiler.enforcement.base import (
    Backend,
    Claim,
    Decision,
    Desired,
    default_burst_bytes,
)
from qosplane.compiler.enforcement.registry import BACKENDS, PLACEMENT_ONLY, unenforced_reason
from qosplane.model.host_state import Capabilities, InstanceQos, Outcome, RuleOutcome
from qosplane.model.plan import AttachedVolume, EffectiveLimit, HostPlan


def host_program(
    plan: HostPlan,
    caps: Capabilities,
    volumes: Sequence[AttachedVolume] = (),
    backends: Sequence[Backend] = BACKENDS,
) -> tuple[InstanceQos, tuple[RuleOutcome, ...]]:
    """The instance's desired host state and one outcome per effective limit of `plan`.
    `volumes`: the attached volumes as the watch lists them. `backends`: the registry's,
    unless a caller brings its own."""
    attached = list(volumes)
    desired = Desired(volumes={v.device: v for v in attached})
    outcomes = tuple(_decide(entry, caps, desired, backends) for entry in plan.effective)
    name = plan.instance_name
    qos = InstanceQos(
        volumes=qemu_storage.volumes(desired, caps),
        name=name,
        devices=() if caps.switched else tc.devices(desired),
        ports=ovs.ports(desired) if caps.ovs_switch else (),
        ovn_ports=ovn.ports(desired) if caps.ovn_switch else (),
        guarantees=uplink.guarantees(desired),
        cpu=cgroups.group(name, desired, caps),
        domain=libvirt_domain.domain(name, plan, desired, caps),
    )
    return qos, outcomes


def _decide(
    entry: EffectiveLimit, caps: Capabilities, desired: Desired, backends: Sequence[Backend]
) -> RuleOutcome:
    # Upstream splits a port across tap, qvb and qvo devices; here the port is one
    # host-side device, its tap, which then carries every limit of the port.
    device = ("tap" + entry.port_id)[:14] if entry.port_id else entry.device
    holding = entry.effective()
    if holding is None and entry.kind == "min_bandwidth":
        # Upstream leaves it to Placement; a host with a configured uplink holds it.
        holding = next((c for c in entry.candidates if c.layer == "placement"), None)
    if holding is None:
        # A guarantee upstream leaves to Placement has no layer either, and says why; so
        # does a limit the host's upstream backend drops (packet rate on ML2/OVN).
        lost = "; ".join(entry.losses)
        reason = PLACEMENT_ONLY.get(entry.kind) or (
            f"no layer of the plan holds it: {lost}" if lost else "no layer of the plan holds it"
        )
        decision = Decision.refused(reason)
    else:
        claim = Claim(entry, device, holding.limit)
        decision = next(
            (d for b in backends if (d := b.take(claim, caps, desired)) is not None),
            Decision(
                Outcome.NOT_ENFORCEABLE, reason=unenforced_reason(entry.kind, entry.direction)
            ),
        )
    return RuleOutcome(
        entry.kind,
        device,
        entry.direction,
        decision.outcome,
        decision.mechanism,
        decision.polices,
        decision.reason,
    )


__all__ = [
    "NFT_DEVICE_MATCH",
    "NFT_MIN_BURST_PACKETS",
    "OVN_BANDWIDTH_MAX_KBIT",
    "OVS_BASE_COOKIE",
    "OVS_COOKIE_MASK",
    "OVS_COOKIE_MATCH",
    "OVS_COOKIE_TAG",
    "OVS_METADATA_MASK",
    "OVS_TABLE_BANDWIDTH_FROM",
    "OVS_TABLE_PACKETS_FROM",
    "OVS_TABLE_TO",
    "UPLINK_DEFAULT_MINOR",
    "Wanted",
    "admit",
    "bridge_ruleset",
    "default_burst_bytes",
    "device_commands",
    "host_program",
    "meter_shaper",
    "openflow_changes",
    "ovn_row_text",
    "ovn_rows",
    "ovs_base_flows",
    "ovs_flow_text",
    "ovs_meter",
    "ovs_meter_ids",
    "ovs_meter_spec",
    "ovs_port_cookie",
    "ovs_port_flows",
    "ovs_port_meters",
    "ovs_queue",
    "parse_htb_class",
    "port_qos_of_rows",
    "redirect_commands",
    "root_commands",
    "same_shaper",
    "uplink_lines",
]
