"""Typed HTTP client for qosplane's own API, used by the CLI (and the agent, later)."""
