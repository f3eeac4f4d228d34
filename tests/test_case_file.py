"""The case file: every malformed part is refused with the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from qosplane.model.errors import Conflict, InvalidInput
from qosplane.model.host_facts import CgroupVersion, HostFacts
from qosplane.model.instance import VifType
from qosplane.openstack.case import case_from_mapping


def base(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"instance": {"uuid": "u", "name": "n"}, "flavor": {"name": "f"}}
    body.update(extra)
    return body


@pytest.mark.parametrize(
    ("body", "key", "allowed"),
    [
        ("not a mapping", "case", "a mapping with keys instance, flavor"),
        (base(instance={"name": "n"}), "instance.uuid", "a non-empty string"),
        (base(flavor={"name": "f", "vcpus": 0}), "vcpus", "an integer >= 1"),
        (base(flavor={"name": "f", "extra_specs": ["x"]}), "flavor.extra_specs", "a mapping"),
        (base(ports={"id": "p"}), "ports", "a list"),
        (base(ports=[{"id": "p", "mac": "m", "colour": 1}]), "ports[0].colour", "keys id, mac"),
        (
            base(ports=[{"id": "p", "mac": "m", "vif_type": "tap"}]),
            "ports[0].vif_type",
            "one of bridge, ethernet, hybrid, direct, hostdev, vhostuser",
        ),
        (
            base(ports=[{"id": "p", "mac": "m", "mtu": 40}]),
            "ports[0].mtu",
            "an integer from 68 to 65535",
        ),
        (
            base(ports=[{"id": "p", "mac": "m", "qos_policy": {"rules": "x"}}]),
            "ports[0].qos_policy.rules",
            "a list of rules",
        ),
        (
            base(
                ports=[
                    {
                        "id": "p",
                        "mac": "m",
                        "qos_policy": {
                            "rules": [
                                {"type": "bandwidth_limit", "max_kbps": 1},
                                {"type": "bandwidth_limit", "max_kbps": 2},
                            ]
                        },
                    }
                ]
            ),
            "ports[0].qos_policy.rules[1]",
            "",
        ),
        (base(volumes=[{"id": "v", "size_gb": 0}]), "volumes[0].size_gb", "an integer from 1"),
        (
            base(volumes=[{"id": "v", "size_gb": 1, "qos_specs": {"specs": [1]}}]),
            "volumes[0].qos_specs.specs",
            "a mapping",
        ),
        (
            base(host={"neutron_meter_bandwidth": "yes"}),
            "host.neutron_meter_bandwidth",
            "true or false",
        ),
        (base(host={"physical_bridges": ["br-ex"]}), "host.physical_bridges", "a mapping"),
        (base(host={"virt_type": "xen"}), "host.virt_type", "one of kvm, qemu"),
        (base(host={"tcp_reference_rtt_ms": 0}), "host.tcp_reference_rtt_ms", "an integer from 1"),
    ],
)
def test_bad_case_names_the_key(body: Any, key: str, allowed: str) -> None:
    with pytest.raises((InvalidInput, Conflict)) as info:
        case_from_mapping(body)
    err = info.value
    assert str(err).startswith(key + ":"), str(err)
    if isinstance(err, InvalidInput):
        assert allowed in err.allowed
    else:
        # A rule conflict is not a bad value but a clash with an earlier rule.
        assert "already exists" in str(err)


def test_defaults_are_the_seeds_host() -> None:
    instance, facts = case_from_mapping(base())
    assert facts == HostFacts()
    assert facts.vif_type is VifType.BRIDGE
    assert facts.cgroup is CgroupVersion.V1
    assert facts.ovs_bridge == "br-int"
    assert instance.flavor.vcpus == 1


def test_port_vif_type_overrides_the_host_default() -> None:
    instance, facts = case_from_mapping(
        base(
            ports=[{"id": "p", "mac": "m", "vif_type": "hybrid"}, {"id": "q", "mac": "m"}],
            host={"vif_type": "ethernet"},
        )
    )
    assert instance.ports[0].vif_type is VifType.HYBRID
    assert instance.ports[1].vif_type is None
    assert facts.vif_type is VifType.ETHERNET
