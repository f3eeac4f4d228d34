"""OVN: each port's limits as the Northbound `QoS` rows ML2/OVN writes, which
ovn-controller turns into OpenFlow meters and an `ip_dscp` load. Only when the host's ports
are OVN logical switch ports (Capabilities.ovn_switch): then it owns every network limit of
the instance, and refuses, with upstream's reason, what ML2/OVN does not enforce.

Upstream: neutron/plugins/ml2/drivers/ovn/mech_driver/ovsdb/extensions/qos.py
(OVNClientQosExtension, neutron 2131d26f), the same rules compiler/upstream/ovn.py renders
for `qosplane plan`: egress `from-lport` on `inport == "<port>"`, ingress `to-lport` on
`outport == "<port>"`, priority 2002, `rate` in kbit/s, `burst` in kbit only when not 0,
the DSCP mark in the egress row. Both directions police (a meter's drop band), as on
ML2/OVN. Two differences, on purpose: a flavor's inbound VIF quota, which ML2/OVN leaves to
libvirt, shares the to-lport row with a port rule (the lower rate, Desired.shape); and on a
flat or VLAN network the egress limit is a from-lport row too, where ML2/OVN writes the
port's qos_max_rate option, which the userspace datapath ignores (host-capabilities.md
§12).

Also the pure renderings the OVN driver compares and writes (rows from a port's QoS and
back)."""

from __future__ import annotations

from collections.abc import Iterable

from qosplane.compiler.enforcement.base import (
    FROM_GUEST,
    TO_GUEST,
    Claim,
    Decision,
    Desired,
)
from qosplane.model.host_state import Capabilities, Mechanism, Meter, OvnPortQos, Shaper
from qosplane.model.plan import (
    OVN_QOS_DEFAULT_RULE_PRIORITY,
    DscpMark,
    OvnQosRow,
    Rate,
    ovn_logical_switch,
)
from qosplane.model.units import (
    BitsPerSecond,
    Bytes,
    Kilobits,
    KilobitsPerSecond,
    bits_per_s_to_kilobits_per_s,
    bits_to_bytes,
    bits_to_kilobits,
    bytes_to_bits,
    kilobits_in_one_second,
    kilobits_per_s_to_bits_per_s,
    kilobits_to_bits,
)

FROM_LPORT = "from-lport"
TO_LPORT = "to-lport"
# ovsdbapp's const.QOS_BANDWIDTH_MAX, the NB schema's bound on rate and burst
OVN_BANDWIDTH_MAX_KBIT = 4294967295  # for a rate in kbit/s and a burst in kbit
# What ML2/OVN's QoS extension says of the rules it skips (qos.py, neutron 2131d26f).
OVN_NO_PACKET_RATE = (
    "packet_rate_limit is not supported by ML2/OVN: its QoS extension logs "
    "'not supported in OVN' and writes no row"
)
OVN_NO_INGRESS_DSCP = "DSCP marking is egress only on ML2/OVN"
OVN_NO_MIN_BANDWIDTH = (
    "ML2/OVN guarantees a minimum with the port's qos_min_rate option, an HTB queue that "
    "ovn-controller fills through set_queue"
)


class OvnBackend:
    name = "ovn"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if not caps.ovn_switch:
            return None
        limit = claim.limit
        if claim.kind == "bandwidth" and claim.direction in (TO_GUEST, FROM_GUEST):
            assert isinstance(limit, Rate)
            kbps = bits_per_s_to_kilobits_per_s(BitsPerSecond(limit.rate_bits_per_s))
            if not 1 <= kbps <= OVN_BANDWIDTH_MAX_KBIT:
                return Decision.refused(
                    f"an OVN QoS rate is 1 to {OVN_BANDWIDTH_MAX_KBIT} kbit/s, not {kbps}"
                )
            rate = kilobits_per_s_to_bits_per_s(kbps)
            # The row's burst is the rule's own, none when it has none: ML2/OVN's.
            shaper = Shaper(rate, rate, Bytes(limit.burst_bytes or 0))
            desired.shape(claim.device, claim.direction == TO_GUEST, shaper)
            return Decision.applied(Mechanism.POLICE_OVN_METER.value, polices=True)
        if claim.kind == "dscp":
            if claim.direction != FROM_GUEST:
                return Decision.refused(OVN_NO_INGRESS_DSCP)
            assert isinstance(limit, DscpMark)
            desired.mark(claim.device, limit.dscp)
            return Decision.applied(Mechanism.MARK_OVN.value)
        if claim.kind == "packet_rate":
            return Decision.refused(OVN_NO_PACKET_RATE)
        if claim.kind == "min_bandwidth":
            # ML2/OVN's own (flat and VLAN networks): the why is the plan's.
            note = next((c.note for c in claim.entry.candidates if c.note), "")
            return Decision.refused(OVN_NO_MIN_BANDWIDTH + (f": {note}" if note else ""))
        return None


def _meter(shaper: Shaper | None) -> Meter | None:
    if shaper is None:
        return None
    return Meter(
        bits_per_s_to_kilobits_per_s(shaper.rate_bits_per_s),
        bits_to_kilobits(bytes_to_bits(shaper.burst_bytes)),
    )


def ports(desired: Desired) -> tuple[OvnPortQos, ...]:
    return tuple(
        OvnPortQos(device, _meter(p.to_instance), _meter(p.from_instance), p.dscp)
        for device, p in sorted(desired.devices.items())
    )


def meter_shaper(meter: Meter) -> Shaper:
    """A row's meter in the shaper's terms (measurement): a cap, its burst; a meter
    without one holds a second of its rate (host-capabilities.md §12)."""
    rate = kilobits_per_s_to_bits_per_s(meter.rate_kilobits_per_s)
    burst = meter.burst_kilobits or kilobits_in_one_second(meter.rate_kilobits_per_s)
    return Shaper(rate, rate, bits_to_bytes(kilobits_to_bits(burst)))


def ovn_rows(qos: OvnPortQos, lsp: str, network_id: str) -> tuple[OvnQosRow, ...]:
    """The NB rows of one port, as ML2/OVN writes them for the same limits: from-lport
    (the limit from the instance and the mark), then to-lport."""
    out = []
    for direction, meter, dscp in (
        (FROM_LPORT, qos.from_instance, qos.dscp),
        (TO_LPORT, qos.to_instance, None),
    ):
        if meter is None and dscp is None:
            continue
        field = "inport" if direction == FROM_LPORT else "outport"
        out.append(
            OvnQosRow(
                switch=ovn_logical_switch(network_id),
                direction=direction,
                priority=OVN_QOS_DEFAULT_RULE_PRIORITY,
                match=f'{field} == "{lsp}"',
                port_id=lsp,
                rate_kbit_per_s=meter.rate_kilobits_per_s if meter is not None else None,
                burst_kbit=meter.burst_kilobits or None if meter is not None else None,
                dscp=dscp,
            )
        )
    return tuple(out)


def port_qos_of_rows(port: str, rows: Iterable[OvnQosRow]) -> OvnPortQos:
    """The inverse of ovn_rows, for what a database holds: each direction's row by its
    direction alone (a row in another shape then renders differently, and the driver's
    comparison of rows finds it)."""
    to_instance = from_instance = None
    dscp = None
    for row in rows:
        meter = (
            Meter(KilobitsPerSecond(row.rate_kbit_per_s), Kilobits(row.burst_kbit or 0))
            if row.rate_kbit_per_s is not None
            else None
        )
        if row.direction == FROM_LPORT:
            from_instance, dscp = meter, row.dscp
        elif row.direction == TO_LPORT:
            to_instance = meter
    return OvnPortQos(port, to_instance, from_instance, dscp)


def ovn_row_text(row: OvnQosRow) -> str:
    """A row as `ovn-nbctl qos-add` takes it: direction, priority, match, then its
    bandwidth (kbit/s, kbit) and action."""
    values = [
        f"{key}={value}"
        for key, value in (
            ("rate", row.rate_kbit_per_s),
            ("burst", row.burst_kbit),
            ("dscp", row.dscp),
        )
        if value is not None
    ]
    return " ".join([row.direction, str(row.priority), f"'{row.match}'", *values])
