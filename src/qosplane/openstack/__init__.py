"""Wire formats in and out: Nova extra specs, Neutron rule JSON, Cinder specs, error bodies.

Only this package knows upstream field names such as `max_kbps` or `quota:vif_inbound_burst`;
it converts them to and from the model's canonical units.
"""
