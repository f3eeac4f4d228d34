"""Warnings and errors a plan carries: each names a code, the device and the key involved."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    device: str = ""
    key: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.device:
            out["device"] = self.device
        if self.key:
            out["key"] = self.key
        return out
