"""The error types host drivers raise: every third-party failure becomes one of these.

Like kopf's TemporaryError and PermanentError, the type says whether trying again can help:
a daemon that is restarting or a device that is missing for a moment may work on the next
pass; a kernel that refuses a value (EINVAL), a missing tool or a domain definition libvirt
rejects will fail the same way until the plan or the host changes. The drivers know which is
which; the agent's reconciler is the one place that acts on it (agent/reconcile.py).
"""

from __future__ import annotations

from qosplane.model.errors import QosplaneError


class HostError(QosplaneError):
    """A host operation failed: what was tried and what the host said. Temporary unless
    raised as `PermanentHostError`."""

    retryable = True

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail.strip()
        super().__init__(f"{operation}: {self.detail}")


class PermanentHostError(HostError):
    """The host refused the operation itself: repeating it unchanged fails the same way."""

    retryable = False


# What the host tools print when they refuse a value or a feature outright, rather than
# failing for the moment. Anything else (busy, missing device, no answer) is temporary;
# so is netlink's bare "Invalid argument", which also answers a class whose parent went
# missing a moment ago.
_REFUSALS = (
    "Operation not supported",
    "Specified qdisc kind is unknown",
    "Unknown qdisc",
    "Numerical result out of range",
    "Illegal",
    "is not installed",
)


def host_error(operation: str, detail: str) -> HostError:
    """The right type for what a tool printed when it failed."""
    if any(refusal in detail for refusal in _REFUSALS):
        return PermanentHostError(operation, detail)
    return HostError(operation, detail)
