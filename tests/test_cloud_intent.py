"""The pure turn of a cloud's answers into intent (cloud/intent.py), on upstream's own API
reference samples (tests/data/upstream-api-samples/README.md names each file's origin),
an old compute microversion included, and on each port binding Nova and Neutron write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qosplane.cloud.audit import audit_of, render_audit
from qosplane.cloud.explain import NOT_APPLIED_HERE, explain_records
from qosplane.cloud.intent import CloudRecords, PortRecord, VolumeRecord, _vif_type, case_of
from qosplane.compiler.upstream.plan import compile_plan
from qosplane.openstack.case import case_from_mapping

SAMPLES = Path(__file__).parent / "data" / "upstream-api-samples"


def sample(name: str, key: str | None = None) -> Any:
    body = json.loads((SAMPLES / name).read_text())
    return body[key] if key else body


def _records(sample_file: str, version: tuple[int, int], **changes: Any) -> CloudRecords:
    port = sample("neutron-port-show-response.json", "port")
    fields: dict[str, Any] = {
        "server": sample(sample_file, "server"),
        "compute_microversion": version,
        "flavor_now": sample("nova-flavor-get-resp.json", "flavor")
        | sample("nova-flavor-extra-specs-list-resp.json"),
        "ports": (
            PortRecord(
                port | {"device_owner": "compute:nova"},
                sample("neutron-network-show-response.json", "network"),
                sample("neutron-qos-policy-show-response.json", "policy"),
                None,
            ),
        ),
        "volumes": (
            VolumeRecord(
                sample("cinder-v3.65-volume-show-response.json", "volume"),
                sample("cinder-volume-type-show-response.json", "volume_type"),
                sample("cinder-qos-show-response.json", "qos_specs"),
            ),
        ),
        "agents": tuple(sample("neutron-agents-list-response.json", "agents")),
        "hypervisor": sample("nova-v2.53-hypervisors-detail-resp.json", "hypervisors")[0],
    }
    return CloudRecords(**(fields | changes))


def test_nova_2_47s_server_with_neutrons_and_cinders_samples_compiles() -> None:
    read = case_of(_records("nova-v2.47-server-get-resp.json", (2, 47)))
    case = read.case
    assert case["instance"]["name"] == "instance-00000001"
    assert case["flavor"]["name"] == "m1.tiny.specs"  # the embedded flavor: what it booted
    assert case["flavor"]["extra_specs"] == {"hw:numa_nodes": "1"}
    (port,) = case["ports"]
    assert port["mac"] == "fa:16:3e:23:fd:d7"
    assert port["mtu"] == 1500
    rules = port["qos_policy"]["rules"]
    assert {r["type"] for r in rules} == {"bandwidth_limit", "dscp_marking"}
    assert all("qos_policy_id" not in r for r in rules)  # cut to the rule's own fields
    (volume,) = case["volumes"]
    assert (volume["size_gb"], volume["qos_specs"]["consumer"]) == (10, "back-end")
    instance, facts = case_from_mapping(case)
    plan = compile_plan(instance, facts)
    kinds = {(e.kind, e.direction) for e in plan.effective}
    assert {("bandwidth", "egress"), ("dscp", "egress")} <= kinds
    # The flavor as it is now has a spec the guest never got: Nova does not re-apply it.
    assert any("hw:cpu_policy was 'unset', is now 'shared'" in f.message for f in read.findings)
    assert {f.code for f in read.findings} >= {"flavor_changed_since_boot"}
    # The sample's agents run on agenthost1, not on the server's host.
    facts_by_name = {f.name: f for f in read.facts}
    assert facts_by_name["Neutron backend"].value == "openvswitch (assumed)"
    assert facts_by_name["hypervisor"].value == "fake 1000"
    assert any("hypervisor fake" in f.message for f in read.findings)


def test_the_backend_comes_from_the_agents_on_the_servers_host() -> None:
    server = sample("nova-v2.47-server-get-resp.json", "server")
    on_agent_host = server | {"OS-EXT-SRV-ATTR:host": "agenthost1"}
    read = case_of(_records("nova-v2.47-server-get-resp.json", (2, 47), server=on_agent_host))
    backend = next(f for f in read.facts if f.name == "Neutron backend")
    assert backend.value == "openvswitch"
    assert "Open vSwitch agent" in backend.source
    assert read.case["host"]["neutron_backend"] == "openvswitch"


def test_an_old_compute_api_gives_the_flavor_by_id_and_says_so() -> None:
    read = case_of(_records("nova-v2.1-server-get-resp.json", (2, 1)))
    assert read.case["flavor"]["name"] == "m1.tiny"  # read by id, as it is now
    assert read.case["flavor"]["extra_specs"] == {"hw:cpu_policy": "shared", "hw:numa_nodes": "1"}
    assert any("2.1 embeds no flavor" in f.message for f in read.findings)
    assert not any(
        f.code == "flavor_changed_since_boot" for f in read.findings
    )  # nothing to compare


def test_what_cannot_be_read_is_named_and_the_rest_explained() -> None:
    server = sample("nova-v2.47-server-get-resp.json", "server")
    hidden = {k: v for k, v in server.items() if not k.startswith("OS-EXT-SRV-ATTR")}
    records = _records(
        "nova-v2.47-server-get-resp.json",
        (2, 47),
        server=hidden,
        agents=None,
        hypervisor=None,
        volumes=(),
        unreadable=(("network agents", "HTTP 403: admin only"),),
    )
    view, read = explain_records(records)
    whats = [u["what"] for u in view["cloud"]["unreadable"]]
    assert whats == ["network agents", "OS-EXT-SRV-ATTR:instance_name"]
    assert view["server"]["instance"] == f"instance-{server['id'][:8]}"
    assert {item["applied"]["status"] for item in view["limits"]} == {NOT_APPLIED_HERE}
    assert read.case["host"] == {"nova_version": "compute API 2.47"}


@pytest.mark.parametrize(
    ("binding", "version", "expected"),
    [
        ({"binding:vif_type": "ovs", "binding:vif_details": {"ovs_hybrid_plug": True}}, (2, 96), "hybrid"),
        ({"binding:vif_type": "ovs", "binding:vif_details": {"ovs_hybrid_plug": False}}, (2, 96), "ethernet"),
        ({"binding:vif_type": "ovs", "binding:vif_details": {}}, (2, 53), "bridge"),
        ({"binding:vif_type": "ovs", "binding:vif_details": {"datapath_type": "netdev"}}, (2, 96), "vhostuser"),
        ({"binding:vif_type": "vhostuser"}, (2, 96), "vhostuser"),
        ({"binding:vif_type": "hw_veb", "binding:vnic_type": "direct"}, (2, 96), "hostdev"),
        ({"binding:vif_type": "hw_veb", "binding:vnic_type": "macvtap"}, (2, 96), "direct"),
        ({"binding:vif_type": "bridge"}, (2, 96), "hybrid"),
        ({"binding:vif_type": "unbound"}, (2, 96), None),
    ],
)  # fmt: skip
def test_each_binding_becomes_the_wiring_nova_gives_it(
    binding: dict[str, Any], version: tuple[int, int], expected: str | None
) -> None:
    vif, why = _vif_type(binding, version)
    assert vif == expected
    assert why


def test_audit_counts_each_finding_once_per_server_with_its_servers() -> None:
    first = _records("nova-v2.47-server-get-resp.json", (2, 47))
    other = dict(first.server) | {"id": "2f6a1c8e-0000-4000-8000-000000000001", "name": "other"}
    second = _records("nova-v2.47-server-get-resp.json", (2, 47), server=other)
    twin = dict(first.server) | {"id": "2f6a1c8e-0000-4000-8000-000000000002"}  # same name
    third = _records("nova-v2.47-server-get-resp.json", (2, 47), server=twin)
    old = _records("nova-v2.1-server-get-resp.json", (2, 1))
    view = audit_of([first, second, third, old])
    assert view["servers"] == 4
    rows = {row["code"]: row for row in view["findings"]}
    changed = rows["flavor_changed_since_boot"]
    assert (changed["count"], changed["servers"]) == (
        3,
        ["new-server-test", "other", "new-server-test"],
    )
    assert rows["flavor_not_embedded"]["servers"] == ["new-server-test"]
    assert view["findings"][0]["count"] >= view["findings"][-1]["count"]  # most first
    text = render_audit(view)
    assert "      3  flavor_changed_since_boot" in text
    assert "on new-server-test, other, new-server-test" in text
