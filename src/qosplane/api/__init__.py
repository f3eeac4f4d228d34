"""HTTP (ASGI): subsets of Keystone v3, Nova v2.1 and Neutron v2.0 under DevStack's paths."""
