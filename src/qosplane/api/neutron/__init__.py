"""Neutron v2.0: the core (networks, subnets, ports, security groups, extensions) and QoS
(policies, their five rule types, rule types)."""
