"""What qosplane enforces: a plan's effective limits -> this host's desired state.

The plan says what holds on the upstream stack; an agent enforces the same guest-relative
limits with what its host has. Each enforcement backend (backends/) says which limits it
can hold given the host's probed capabilities and contributes their desired state; the
registry orders them, and the first that takes a limit owns it. Pure."""
