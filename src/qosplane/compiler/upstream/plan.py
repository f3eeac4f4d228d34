"""compile_plan: one instance's intent on one host -> every host artifact plus what holds."""

from __future__ import annotations

from qosplane.compiler.upstream.cgroups import cgroup_settings
from qosplane.compiler.upstream.effective import compute_effective
from qosplane.compiler.upstream.libvirt_xml import domain_xml, effective_cputune
from qosplane.compiler.upstream.ovn import ovn_plan
from qosplane.compiler.upstream.ovs import ovs_plan
from qosplane.compiler.upstream.qemu_args import qemu_drives
from qosplane.compiler.upstream.tc import tc_plan
from qosplane.compiler.upstream.topology import wire_disks, wire_ports
from qosplane.model.host_facts import HostFacts, NeutronBackend
from qosplane.model.instance import Instance
from qosplane.model.plan import Finding, HostPlan
from qosplane.openstack.nova import dropped_vif_keys


def compile_plan(instance: Instance, facts: HostFacts) -> HostPlan:
    ports = wire_ports(instance, facts)
    disks = wire_disks(instance, facts)
    flavor = instance.flavor
    eff = compute_effective(instance, facts, ports, disks)
    ovn_qos, ovn_lsp = ovn_plan(ports) if facts.neutron_backend is NeutronBackend.OVN else ([], [])
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
        ovn_qos=ovn_qos,
        ovn_lsp_options=ovn_lsp,
    )


__all__ = ["HostPlan", "compile_plan"]
