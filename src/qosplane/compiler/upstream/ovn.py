"""What ML2/OVN writes to the OVN Northbound database for a port's QoS policy.

Upstream: neutron/plugins/ml2/drivers/ovn/mech_driver/ovsdb/extensions/qos.py
(OVNClientQosExtension, neutron 2131d26f):
- the rules of one direction become one `QoS` row on switch `neutron-<network id>`,
  priority 2002: egress `from-lport` matching `inport == "<port id>"`, ingress `to-lport`
  matching `outport == "<port id>"`; `rate` is max_kbps, `burst` max_burst_kbps only when
  non-zero; a DSCP mark goes in the egress row (`action:dscp`); a direction with neither a
  rate nor a mark has no row;
- on a flat or VLAN network the egress limit and an egress minimum bandwidth move into the
  port's `options:qos_max_rate`, `qos_burst`, `qos_min_rate` (kbit x 1000: bit/s, bits);
- packet rate rules, and minimum bandwidth ingress, are not supported (logged, nothing is
  written); network device ports (`network:*` owners) and SR-IOV (external) ports are left
  to others.
ovn-controller turns each row's bandwidth into an OpenFlow meter (`ls_in_qos_meter`,
`ls_out_qos_meter`) and the mark into a `load` of `ip_dscp` (`ls_in_qos_mark`).
"""

from __future__ import annotations

from qosplane.compiler.upstream.neutron_paths import is_sriov
from qosplane.compiler.upstream.topology import PortWiring
from qosplane.model.network_qos import (
    BandwidthLimitRule,
    Direction,
    DscpMarkingRule,
    MinimumBandwidthRule,
)
from qosplane.model.plan import (
    OVN_QOS_DEFAULT_RULE_PRIORITY,
    OvnLspQosOptions,
    OvnQosRow,
    ovn_logical_switch,
)
from qosplane.model.units import (
    bits_per_s_to_kilobits_per_s,
    bits_to_kilobits,
    kilobits_per_s_to_bits_per_s,
    kilobits_to_bits,
)

PHYSICAL_NETWORK_TYPES = ("flat", "vlan")  # neutron's TYPE_PHYSICAL


def ovn_handles(wiring: PortWiring) -> bool:
    """Whether ML2/OVN's QoS extension writes anything for this port."""
    if wiring.policy is None or is_sriov(wiring):
        return False
    return not is_network_device_port(wiring)


def is_network_device_port(wiring: PortWiring) -> bool:
    """neutron/common/ovn/utils.py is_network_device_port: owners network:* and neutron:*."""
    return wiring.port.device_owner.startswith(("network:", "neutron:"))


def on_physical_network(wiring: PortWiring) -> bool:
    return wiring.port.network_type in PHYSICAL_NETWORK_TYPES


def _row(wiring: PortWiring, direction: Direction) -> OvnQosRow | None:
    assert wiring.policy is not None
    port = wiring.port
    limit = next(
        (
            r
            for r in wiring.policy.rules
            if isinstance(r, BandwidthLimitRule) and r.direction is direction
        ),
        None,
    )
    if limit is not None and direction is Direction.EGRESS and on_physical_network(wiring):
        limit = None  # in the LSP options instead
    dscp = next((r.dscp_mark for r in wiring.policy.rules if isinstance(r, DscpMarkingRule)), None)
    if direction is not Direction.EGRESS:
        dscp = None
    if limit is None and dscp is None:
        return None
    burst = bits_to_kilobits(limit.max_burst_bits) if limit is not None else 0
    egress = direction is Direction.EGRESS
    return OvnQosRow(
        switch=ovn_logical_switch(port.network_id),
        direction="from-lport" if egress else "to-lport",
        priority=OVN_QOS_DEFAULT_RULE_PRIORITY,
        match=f'{"inport" if egress else "outport"} == "{port.id}"',
        port_id=port.id,
        rate_kbit_per_s=(
            bits_per_s_to_kilobits_per_s(limit.max_rate_bits_per_s) if limit is not None else None
        ),
        burst_kbit=burst or None,
        dscp=dscp,
    )


def _lsp_options(wiring: PortWiring) -> OvnLspQosOptions | None:
    assert wiring.policy is not None
    if not on_physical_network(wiring):
        return None
    options = OvnLspQosOptions(wiring.port.id)
    for rule in wiring.policy.rules:
        if rule.direction is not Direction.EGRESS:
            continue
        if isinstance(rule, BandwidthLimitRule):
            burst = bits_to_kilobits(rule.max_burst_bits)
            options = OvnLspQosOptions(
                options.port_id,
                kilobits_per_s_to_bits_per_s(
                    bits_per_s_to_kilobits_per_s(rule.max_rate_bits_per_s)
                ),
                kilobits_to_bits(burst) if burst else None,
                options.min_rate_bits_per_s,
            )
        elif isinstance(rule, MinimumBandwidthRule):
            options = OvnLspQosOptions(
                options.port_id,
                options.max_rate_bits_per_s,
                options.burst_bits,
                kilobits_per_s_to_bits_per_s(
                    bits_per_s_to_kilobits_per_s(rule.min_rate_bits_per_s)
                ),
            )
    if options == OvnLspQosOptions(wiring.port.id):
        return None  # nothing to set (Neutron's write would only clear the keys)
    return options


def ovn_plan(
    ports: tuple[PortWiring, ...],
) -> tuple[list[OvnQosRow], list[OvnLspQosOptions]]:
    """The NB QoS rows and LSP options ML2/OVN would write for these ports."""
    rows: list[OvnQosRow] = []
    lsp: list[OvnLspQosOptions] = []
    for wiring in ports:
        if not ovn_handles(wiring):
            continue
        for direction in (Direction.EGRESS, Direction.INGRESS):
            row = _row(wiring, direction)
            if row is not None:
                rows.append(row)
        options = _lsp_options(wiring)
        if options is not None:
            lsp.append(options)
    return rows, lsp
