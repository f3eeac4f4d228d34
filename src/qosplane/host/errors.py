"""The one error type host drivers raise."""

from __future__ import annotations

from qosplane.model.errors import QosplaneError


class HostError(QosplaneError):
    """A host operation failed: what was tried and what the host said."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail.strip()
        super().__init__(f"{operation}: {self.detail}")
