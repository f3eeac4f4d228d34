"""Warnings and errors a plan carries: the type lives with the plan in the model."""

from __future__ import annotations

from qosplane.model.plan import Finding

__all__ = ["Finding"]
