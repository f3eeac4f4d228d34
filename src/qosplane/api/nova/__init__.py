"""Nova v2.1: flavors, servers, keypairs and volume attachments, hypervisors, aggregates
and availability zones."""
