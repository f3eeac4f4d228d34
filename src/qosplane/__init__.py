"""qosplane: one QoS control plane for KVM/libvirt/Open vSwitch hosts."""

__version__ = "0.1.0"
