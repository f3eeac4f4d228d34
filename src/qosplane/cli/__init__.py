"""Composition root: settings in, objects wired, command run."""
