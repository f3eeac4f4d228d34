"""What `qosplane serve` runs: one API process, or N worker processes on one port.

With `--workers N` uvicorn starts N processes that each import `worker_app` and build their
own app, engine and connection pool. They share nothing but the database: its conditional
UPDATEs keep every compare-and-bump right across them (store/), and on PostgreSQL its
LISTEN/NOTIFY wakes an agent's watch whichever worker holds it (api/watch.py). The worker's
settings come through one environment variable, since uvicorn passes no arguments to a
factory.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from starlette.applications import Starlette

from qosplane.api.app import build_app
from qosplane.api.auth import TokenSigner
from qosplane.api.common import Services
from qosplane.api.policy import PolicyEngine
from qosplane.cli.state import load_or_create
from qosplane.store.database import Database, make_engine
from qosplane.store.identity import DEFAULT_PASSWORD_HASH_ROUNDS

WORKER_SETTINGS_ENV = "QOSPLANE_SERVE_WORKER"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    state_dir: str
    db_url: str
    policy_file: str
    local_host: str
    password_hash_rounds: int = DEFAULT_PASSWORD_HASH_ROUNDS

    def to_env(self) -> str:
        return json.dumps(asdict(self))


def services_for(settings: ServeSettings) -> Services:
    state = load_or_create(Path(settings.state_dir))
    return Services(
        Database(make_engine(settings.db_url)),
        TokenSigner(state.token_secret),
        state.admin,
        settings.local_host,
        policy=PolicyEngine(Path(settings.policy_file)),
        password_hash_rounds=settings.password_hash_rounds,
    )


def worker_app() -> Starlette:
    """One worker's app (uvicorn's factory): the settings its parent `serve` exported."""
    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if raw is None:
        raise RuntimeError(f"{WORKER_SETTINGS_ENV} is unset: workers are started by `serve`")
    return build_app(services_for(ServeSettings(**json.loads(raw))))
