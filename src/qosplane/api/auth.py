"""Tokens and the request context.

A token is a payload (user, project, roles, issue and expiry times, an audit id) signed with
HMAC-SHA256 under a secret kept in the state directory, so any API worker can verify any
token. The signature only proves qosplane issued it: every request then holds it against
the identity store (`api/common.py`, `IdentityRepository.standing`), so a revoked token, a
deleted or disabled user or project, or a removed role ends access at once, as Keystone's
revocation does, and the roles a request acts with are the ones assigned now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from qosplane.model.errors import Unauthorized

TOKEN_LIFETIME = timedelta(hours=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    expires_at: datetime
    issued_at: datetime = field(default_factory=utcnow)
    # Keystone's audit id: names one token without being it (revocation, logs).
    audit_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # A system-scoped token (project_id ""): read by Keystone's API only here.
    system: bool = False

    def with_roles(self, roles: tuple[str, ...]) -> Context:
        return replace(self, roles=roles)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_system_reader(self) -> bool:
        """Keystone's SYSTEM_READER (keystone/common/policies/base.py): reader on the system."""
        return self.system and "reader" in self.roles

    @property
    def scope(self) -> str | None:
        """The project whose resources this caller sees; None for an admin (all)."""
        return None if self.is_admin else self.project_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, ctx: Context) -> str:
        payload = _b64(
            json.dumps(
                {
                    "u": ctx.user_id,
                    "un": ctx.user_name,
                    "p": ctx.project_id,
                    "pn": ctx.project_name,
                    "r": list(ctx.roles),
                    "e": ctx.expires_at.isoformat(),
                    "i": ctx.issued_at.isoformat(),
                    "a": ctx.audit_id,
                    "s": ctx.system,
                },
                separators=(",", ":"),
            ).encode()
        )
        sig = _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        return f"{payload}.{sig}"

    def verify(self, token: str | None, now: datetime) -> Context:
        if not token or token.count(".") != 1:
            raise Unauthorized("The request you have made requires authentication.")
        payload, sig = token.split(".")
        expected = _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, expected):
            raise Unauthorized("The request you have made requires authentication.")
        try:
            data = json.loads(_unb64(payload))
            ctx = Context(
                data["u"],
                data["un"],
                data["p"],
                data["pn"],
                tuple(data["r"]),
                datetime.fromisoformat(data["e"]),
                datetime.fromisoformat(data["i"]),
                data["a"],
                bool(data.get("s", False)),
            )
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("The request you have made requires authentication.") from None
        if ctx.expires_at <= now:
            raise Unauthorized("The token has expired.")
        return ctx
