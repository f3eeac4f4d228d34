"""The only code that touches a machine: small typed interfaces with a real driver and an
in-memory fake each. Third-party and process errors become HostError here."""
