"""compile_plan: one instance's intent on one host -> every host artifact plus what holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qosplane.compiler.cgroups import cgroup_settings
from qosplane.compiler.effective import EffectiveLimit, compute_effective
from qosplane.compiler.findings import Finding
from qosplane.compiler.libvirt_xml import domain_xml, effective_cputune
from qosplane.compiler.ovs import ovs_plan
from qosplane.compiler.qemu_args import qemu_drives
from qosplane.compiler.tc import tc_plan
from qosplane.compiler.topology import wire_disks, wire_ports
from qosplane.model.host_facts import HostFacts
from qosplane.model.instance import Instance
from qosplane.openstack.nova import dropped_vif_keys

Argv = list[str]


@dataclass(frozen=True, slots=True)
class HostPlan:
    instance_uuid: str
    instance_name: str
    hostname: str
    domain_xml: str
    qemu_drives: dict[str, str]
    cgroup: dict[str, dict[str, str]]
    tc: dict[str, list[Argv]]
    ovs: list[Argv]
    effective: list[EffectiveLimit]
    errors: list[Finding]
    warnings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        """The `qosplane plan --json` object (design.md section 1)."""
        return {
            "instance": {"uuid": self.instance_uuid, "name": self.instance_name},
            "host": self.hostname,
            "domain_xml": self.domain_xml,
            "qemu_drives": dict(self.qemu_drives),
            "cgroup": {version: dict(files) for version, files in self.cgroup.items()},
            "tc": {dev: [list(a) for a in cmds] for dev, cmds in self.tc.items()},
            "ovs": [list(a) for a in self.ovs],
            "effective": [e.to_json() for e in self.effective],
            "errors": [f.to_json() for f in self.errors],
            "warnings": [f.to_json() for f in self.warnings],
        }


def compile_plan(instance: Instance, facts: HostFacts) -> HostPlan:
    ports = wire_ports(instance, facts)
    disks = wire_disks(instance, facts)
    flavor = instance.flavor
    eff = compute_effective(instance, facts, ports, disks)
    for key in dropped_vif_keys(flavor.extra_specs):
        eff.warnings.append(
            Finding(
                "vif_key_without_average",
                f"{key} is dropped: Nova writes a direction only when its average is set",
                "",
                key,
            )
        )
    return HostPlan(
        instance_uuid=instance.uuid,
        instance_name=instance.name,
        hostname=facts.hostname,
        domain_xml=domain_xml(instance, facts, ports, disks),
        qemu_drives=qemu_drives(disks),
        cgroup=cgroup_settings(
            effective_cputune(flavor.qos.cpu, flavor.vcpus, facts), flavor.vcpus
        ),
        tc=tc_plan(ports, flavor.qos),
        ovs=ovs_plan(ports, flavor.qos, facts, instance.uuid),
        effective=eff.limits,
        errors=eff.errors,
        warnings=eff.warnings,
    )
