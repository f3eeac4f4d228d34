"""The state directory (design.md section 2): database, generated admin credentials, the
listen address for `qosplane openrc`. First start creates it; later starts reuse it."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from qosplane.api.common import AdminAccount


def default_state_dir() -> Path:
    explicit = os.environ.get("QOSPLANE_STATE_DIR")
    if explicit:
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "qosplane"


@dataclass(frozen=True, slots=True)
class State:
    directory: Path
    admin: AdminAccount
    token_secret: bytes

    @property
    def sqlite_path(self) -> Path:
        return self.directory / "qosplane.db"

    @property
    def endpoint_file(self) -> Path:
        return self.directory / "endpoint"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def load_or_create(directory: Path) -> State:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = directory / "admin.json"
    if not creds.exists():
        _write_private(
            creds,
            json.dumps(
                {
                    "user_id": uuid.uuid4().hex,
                    "project_id": uuid.uuid4().hex,
                    "password": secrets.token_urlsafe(18),
                }
            ),
        )
    secret_file = directory / "token-secret"
    if not secret_file.exists():
        _write_private(secret_file, secrets.token_hex(32))
    data = json.loads(creds.read_text())
    return State(
        directory=directory,
        admin=AdminAccount(data["user_id"], data["password"], data["project_id"]),
        token_secret=bytes.fromhex(secret_file.read_text().strip()),
    )


def openrc_lines(state: State) -> list[str]:
    if not state.endpoint_file.exists():
        raise FileNotFoundError(
            f"{state.endpoint_file} does not exist: start `qosplane serve --state-dir "
            f"{state.directory}` first"
        )
    endpoint = state.endpoint_file.read_text().strip()
    values = {
        "OS_AUTH_URL": f"{endpoint}/identity/v3",
        "OS_AUTH_TYPE": "password",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": state.admin.password,
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_REGION_NAME": "RegionOne",
        "OS_INTERFACE": "public",
    }
    return [f"export {key}={value}" for key, value in values.items()]
