"""A small client: password authentication against /identity/v3, then native calls.

Standard library only (urllib), so the CLI's client commands start fast. Errors come back as
the classes the API raised (`openstack/errors.py` read backwards): a 409 is a `Conflict`, a
412 a `RevisionMismatch`, a 5xx a `ServiceFault`, and a refused or timed-out connection an
`Unreachable`, never a bare `OSError`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qosplane.model.errors import Unauthorized, Unreachable
from qosplane.model.host_facts import HostFacts
from qosplane.model.plan import DesiredHost
from qosplane.model.report import PlacedServer, ServerReport, ServerStatus, Verdict
from qosplane.openstack.case import host_facts_to_case
from qosplane.openstack.errors import error_for_status


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
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.creds.endpoint.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            raise error_for_status(exc.code, _message(exc.read())) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise Unreachable(f"{method} {self.creds.endpoint}{path}: {reason}") from None

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

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """An authenticated request (with `headers`, e.g. If-Match); a token that expired
        meanwhile is renewed once."""
        for attempt in (1, 2):
            try:
                _, _, data = self._request(
                    method, path, body, {**(headers or {}), "X-Auth-Token": self.token()}, timeout_s
                )
            except Unauthorized:
                if attempt == 2:
                    raise
                self._token = None
                continue
            return json.loads(data) if data else None
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    # --- agents ---------------------------------------------------------------------
    def register_host(self, name: str, facts: HostFacts) -> None:
        body = {"name": name, "facts": host_facts_to_case(facts)}
        self.call("POST", "/qosplane/v1/hosts", {"host": body})

    def watch(self, host: str, since: int, timeout_s: float) -> DesiredHost:
        """The host's desired state once its revision differs from `since`, or an
        unchanged answer after `timeout_s`."""
        state = self.call(
            "GET",
            f"/qosplane/v1/hosts/{host}/watch?since={since}&timeout={int(timeout_s)}",
            timeout_s=timeout_s + self.timeout_s,
        )
        return DesiredHost.from_json(state)

    def report(self, host: str, revision: int, servers: Sequence[ServerReport]) -> None:
        body = {"revision": revision, "servers": [s.to_json() for s in servers]}
        self.call("PUT", f"/qosplane/v1/hosts/{host}/report", body)

    def heartbeat(self, host: str) -> None:
        self.call("POST", f"/qosplane/v1/hosts/{host}/heartbeat", {})

    def server_status(self, server_id: str) -> ServerStatus:
        return ServerStatus.from_json(self.get(f"/qosplane/v1/servers/{server_id}/status"))

    def record_measurement(self, server_id: str, verdicts: Sequence[Verdict]) -> None:
        body = {"verdicts": [v.to_json() for v in verdicts]}
        self.call("PUT", f"/qosplane/v1/servers/{server_id}/measurements", body)

    def server_plan(self, name_or_id: str) -> PlacedServer:
        """The server's plan and wiring, by id or (unique) name."""
        return PlacedServer.from_json(self.get(f"/qosplane/v1/servers/{name_or_id}/plan"))
