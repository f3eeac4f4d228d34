"""What OpenStack writes: (intent, HostFacts) -> HostPlan.

The libvirt domain XML Nova's driver defines, QEMU's -drive throttling, the cgroup values,
the tc commands libvirt runs, the rows and flows Neutron's OVS agent sets, and `effective`:
which of these really holds on the upstream stack. Pure; golden-tested against the seed."""
