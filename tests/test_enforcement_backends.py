"""The enforcement seam: each limit goes to the first backend of the registry that takes
it, a backend answers only for what it holds, and a new backend drops in as one object."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from qosplane.compiler.enforcement.base import Claim, Decision, Desired
from qosplane.compiler.enforcement.program import host_program
from qosplane.compiler.enforcement.registry import BACKENDS
from qosplane.model.host_state import Capabilities, Outcome
from qosplane.model.plan import HostPlan, PacketRate
from tests.conftest import EXAMPLES, load_case, plan_of
from tests.test_host_program import hybrid_plan

EVERYTHING = Capabilities(
    htb=True,
    ifb_mirred=True,
    nft_bridge=True,
    cgroup_v1_cpu=True,
    qemu_storage_daemon=True,
)
CASES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def _claims(plan: HostPlan) -> list[Claim]:
    out = []
    for entry in plan.effective:
        holding = entry.effective()
        if holding is not None:
            device = ("tap" + entry.port_id)[:14] if entry.port_id else entry.device
            out.append(Claim(entry, device, holding.limit))
    return out


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("switch", ["linuxbridge", "ovs", "ovn"])
@pytest.mark.parametrize("libvirt", [False, True])
def test_at_most_the_outcome_the_program_reports_comes_from_the_first_taker(
    name: str, switch: str, libvirt: bool
) -> None:
    caps = Capabilities(
        htb=True,
        ifb_mirred=True,
        nft_bridge=True,
        cgroup_v1_cpu=True,
        qemu_storage_daemon=True,
        ovs_switch=switch == "ovs",
        ovn_switch=switch == "ovn",
        libvirt=libvirt,
    )
    plan = plan_of(load_case(name))
    _, outcomes = host_program(plan, caps)
    by_key = {(o.kind, o.device, o.direction): o for o in outcomes}
    for claim in _claims(plan):
        takers = [
            (b.name, d) for b in BACKENDS if (d := b.take(claim, caps, Desired({}))) is not None
        ]
        reported = by_key[(claim.kind, claim.device, claim.direction)]
        if takers:
            assert reported.mechanism == takers[0][1].mechanism, (claim, takers)
            assert reported.outcome is takers[0][1].outcome
        else:
            assert reported.outcome is Outcome.NOT_ENFORCEABLE


def test_no_backend_takes_what_needs_a_driver_the_host_has_not() -> None:
    """A host with no switch and no libvirt: the OVS, OVN and libvirt backends answer
    nothing."""
    plan = HostPlan.from_json(hybrid_plan("m1-resquota.yaml"))
    by_name = {b.name: b for b in BACKENDS}
    for claim in _claims(plan):
        for name in ("ovs", "ovn", "libvirt-domain"):
            assert by_name[name].take(claim, EVERYTHING, Desired({})) is None


def test_the_registry_names_each_backend_once() -> None:
    names = [b.name for b in BACKENDS]
    assert len(names) == len(set(names))


@dataclass
class _PacketPolicer:
    """A backend of the test's own: packet rate limits, which no registered one holds."""

    name: str = "test-packet-policer"
    taken: int = 0

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "packet_rate" or not isinstance(claim.limit, PacketRate):
            return None
        self.taken += 1
        return Decision.applied(f"policer at {claim.limit.rate_packets_per_s} pkt/s", polices=True)


def _packet_rate_plan() -> HostPlan:
    case = load_case("vm-neutron-qos.yaml")
    rules = case["ports"][0]["qos_policy"]["rules"]
    rules.append(
        {"type": "packet_rate_limit", "max_kpps": 10, "max_burst_kpps": 1, "direction": "egress"}
    )
    case["host"] = {
        **(case.get("host") or {}),
        "vif_type": "hybrid",
        "neutron_meter_bandwidth": True,
    }
    return plan_of(case)


def test_a_new_backend_is_one_object_in_the_list() -> None:
    plan = _packet_rate_plan()
    # The registry without its own packet rate backend (nftables), in its place a new one.
    registry = tuple(b for b in BACKENDS if b.name != "nft-packet-rate")
    assert len(registry) == len(BACKENDS) - 1
    _, without = host_program(plan, EVERYTHING, backends=registry)
    (refused,) = [o for o in without if o.kind == "packet_rate"]
    assert refused.outcome is Outcome.NOT_ENFORCEABLE
    assert refused.reason == "no mechanism for packet_rate egress"
    policer = _PacketPolicer()
    _, with_it = host_program(plan, EVERYTHING, backends=(*registry, policer))
    (taken,) = [o for o in with_it if o.kind == "packet_rate"]
    assert (taken.outcome, taken.mechanism, taken.polices) == (
        Outcome.APPLIED,
        "policer at 10000 pkt/s",
        True,
    )
    assert policer.taken == 1
    others = [o for o in with_it if o.kind != "packet_rate"]
    assert others == [o for o in without if o.kind != "packet_rate"]
