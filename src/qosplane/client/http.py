"""A small client: password authentication against /identity/v3, then native calls.

Standard library only (urllib), so the CLI's client commands start fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from qosplane.model.errors import NotFound, QosplaneError, Unauthorized


class ApiError(QosplaneError):
    """The API answered with an error status; the message is the service's own."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


@dataclass(frozen=True, slots=True)
class Credentials:
    endpoint: str  # http://host:port
    username: str
    password: str
    project_name: str


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:200]
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
    return str(data)[:200]


class QosplaneClient:
    def __init__(self, creds: Credentials, timeout_s: float = 10.0) -> None:
        self.creds = creds
        self.timeout_s = timeout_s
        self._token: str | None = None

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.creds.endpoint.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if exc.code == 404:
                raise NotFound("resource", _message(payload)) from None
            if exc.code == 401:
                raise Unauthorized(_message(payload)) from None
            raise ApiError(exc.code, _message(payload)) from None

    def token(self) -> str:
        if self._token is None:
            _, headers, _ = self._request(
                "POST",
                "/identity/v3/auth/tokens",
                {
                    "auth": {
                        "identity": {
                            "methods": ["password"],
                            "password": {
                                "user": {
                                    "name": self.creds.username,
                                    "password": self.creds.password,
                                    "domain": {"name": "Default"},
                                }
                            },
                        },
                        "scope": {
                            "project": {
                                "name": self.creds.project_name,
                                "domain": {"name": "Default"},
                            }
                        },
                    }
                },
            )
            self._token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
            if not self._token:
                raise Unauthorized("the identity service returned no token")
        return self._token

    def get(self, path: str) -> Any:
        _, _, body = self._request("GET", path, headers={"X-Auth-Token": self.token()})
        return json.loads(body)

    def server_plan(self, name_or_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"/qosplane/v1/servers/{name_or_id}/plan")
        return data
