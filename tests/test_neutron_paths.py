"""Neutron's data-plane path for a bandwidth_limit rule is decided once
(compiler/upstream/neutron_paths.py) and both renderings follow it: the OVS argv that
`plan` prints and the artifact `effective` says holds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qosplane.compiler.upstream.neutron_paths import BandwidthPath
from tests.conftest import load_case, plan_of

# path -> (the word the argv must carry, or None for no OVS command; layer; mechanism)
RENDERED = {
    BandwidthPath.METER: ("add-meter", "neutron-ovs", "meter"),
    BandwidthPath.INGRESS_POLICING: ("ingress_policing_rate=3000", "neutron-ovs", "police"),
    BandwidthPath.EGRESS_POLICER: ("type=egress-policer", "neutron-ovs", "police"),
    BandwidthPath.LINUX_HTB_QUEUE: ("type=linux-htb", "neutron-ovs", "shape"),
    BandwidthPath.SRIOV_VF_RATE: (None, "sriov-agent", "police"),
    BandwidthPath.SRIOV_NO_INGRESS: (None, None, None),
}


def _case(vif_type: str, direction: str, meter: bool) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(load_case("vm-neutron-qos.yaml"))
    body["ports"] = body["ports"][:1]
    body["ports"][0]["vif_type"] = vif_type
    body["ports"][0]["qos_policy"]["rules"][0]["direction"] = direction
    body["host"] = {**body["host"], "neutron_meter_bandwidth": meter}
    return body


@pytest.mark.parametrize(
    ("vif_type", "direction", "meter", "path"),
    [
        ("bridge", "egress", True, BandwidthPath.METER),
        ("bridge", "ingress", True, BandwidthPath.METER),
        ("bridge", "egress", False, BandwidthPath.INGRESS_POLICING),
        ("hybrid", "egress", False, BandwidthPath.INGRESS_POLICING),
        ("ethernet", "ingress", False, BandwidthPath.LINUX_HTB_QUEUE),
        ("vhostuser", "ingress", False, BandwidthPath.EGRESS_POLICER),
        ("bridge", "ingress", False, BandwidthPath.LINUX_HTB_QUEUE),
        ("hostdev", "egress", False, BandwidthPath.SRIOV_VF_RATE),
        ("hostdev", "egress", True, BandwidthPath.SRIOV_VF_RATE),
        ("direct", "ingress", False, BandwidthPath.SRIOV_NO_INGRESS),
    ],
)
def test_argv_and_effective_follow_the_one_decision(
    vif_type: str, direction: str, meter: bool, path: BandwidthPath
) -> None:
    plan = plan_of(_case(vif_type, direction, meter))
    word, layer, mechanism = RENDERED[path]
    rendered = plan.ovs  # m1.normal has no VIF quota: every OVS command is Neutron's
    if word is None:
        assert rendered == []
    else:
        assert any(word in w for a in rendered for w in a), rendered
    (entry,) = [
        e
        for e in plan.effective
        if e.kind == "bandwidth"
        and e.direction == direction
        and any(d.key.startswith("bandwidth_limit") for d in e.declared)
    ]
    neutron = [c for c in entry.candidates if c.layer in ("neutron-ovs", "sriov-agent")]
    if layer is None:
        assert neutron == []
        assert any("SR-IOV" in loss for loss in entry.losses)
    else:
        assert [(c.layer, c.mechanism) for c in neutron] == [(layer, mechanism)]
