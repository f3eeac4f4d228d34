"""Engine, migrations and the one transaction boundary every write goes through."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from qosplane.model.errors import InvalidInput, NotFound
from qosplane.store.tables import Base

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        # SQLite enforces foreign keys (ON DELETE CASCADE) only when asked, per connection.
        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (first start creates it; later starts are no-ops)."""
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str = "base") -> None:
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, run: Callable[[Config], None]) -> None:
    """Run migrations in one transaction. On SQLite, with foreign keys off while they run:
    alembic's batch mode rebuilds a table by dropping it, and with foreign keys on that
    drop cascades into every table that references it (role grants, on a rebuild of
    users or projects). The keys are checked once the migrations are done, and a
    violation aborts them (alembic's batch documentation asks for exactly this)."""
    config = _alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # Outside a transaction, or SQLite ignores it; pysqlite opens none for a PRAGMA.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends SQLAlchemy's autobegun (empty) transaction
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                run(config)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upsert(
    session: Session, table: type[Base], values: Mapping[str, object], keys: tuple[str, ...]
) -> None:
    """Insert a row, or update its other columns where one with the same `keys` exists, in
    one statement the database makes atomic (`ON CONFLICT DO UPDATE`, SQLite and
    PostgreSQL both have it)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(dict(values))
    changed = {k: statement.excluded[k] for k in values if k not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changed))


HostsChanged = Callable[[frozenset[str]], None]
NOTIFY_CHANNEL = "qosplane_hosts"
LISTEN_POLL_S = 0.5  # how often the LISTEN thread checks whether it should stop
LISTEN_RETRY_MIN_S = 0.2
LISTEN_RETRY_MAX_S = 5.0
LOG = logging.getLogger("qosplane.store")


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._on_hosts_changed: list[HostsChanged] = []

    def on_hosts_changed(self, listener: HostsChanged) -> None:
        """Call `listener` with the hosts whose revision a transaction bumped, after it
        commits (never for a rolled-back one): this is what wakes watching agents."""
        self._on_hosts_changed.append(listener)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session:
            try:
                with session.begin():
                    yield session
            except DataError as exc:
                raise _as_invalid_input(exc) from None
            bumped = frozenset(session.info.pop("bumped_hosts", ()))
        if bumped:
            for listener in self._on_hosts_changed:
                listener(bumped)


STRING_COLUMN_MAX = 255


def _as_invalid_input(exc: DataError) -> InvalidInput:
    """A value the database refused (PostgreSQL checks VARCHAR lengths and INTEGER ranges,
    SQLite does not): a 400 naming the column, not a 500. Handlers validate what they
    know; this catches what slipped through, the same way on both databases."""
    params = exc.params if isinstance(exc.params, dict) else {}
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "refused by the database"
    sized = re.search(r"character varying\((\d+)\)", reason)
    limit = int(sized.group(1)) if sized else STRING_COLUMN_MAX
    suspects = [
        key
        for key, value in params.items()
        if (isinstance(value, str) and len(value) > limit)
        or (isinstance(value, int) and not -(2**31) <= value < 2**31)
    ]
    field = suspects[0] if suspects else "body"
    value = params.get(field, "") if suspects else ""
    shown = f"{str(value)[:20]}... ({len(str(value))} characters)" if suspects else ""
    return InvalidInput(
        field, shown, f"at most {limit} characters, integers within 32 bits", reason
    )


def fetch(session: Session, row_type: type[T], key: object, kind: str) -> T:
    """The row with primary key `key`, or NotFound naming `kind` and the key as given."""
    row = session.get(row_type, key)
    if row is None:
        raise NotFound(kind, str(key))
    return row


def listen_host_changes(
    engine: Engine, listener: HostsChanged, stop: threading.Event
) -> threading.Thread | None:
    """On PostgreSQL, a thread that LISTENs for host revision bumps committed by any API
    worker and passes them to `listener` until `stop` is set. None on SQLite, where one
    process owns the database and the in-process call after commit is enough."""
    if engine.dialect.name != "postgresql":
        return None
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def listen() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            while not stop.is_set():
                hosts = frozenset(n.payload for n in conn.notifies(timeout=LISTEN_POLL_S))
                if hosts:
                    listener(hosts)

    def run() -> None:
        # A restarted or failed-over database drops the connection; listen again, waiting
        # longer each time it fails at once. Watchers re-read their revision every second
        # meanwhile (api/watch.py), so nothing waits on a lost notification for long.
        pause_s = LISTEN_RETRY_MIN_S
        while not stop.is_set():
            started = time.monotonic()
            try:
                listen()
            except psycopg.Error as exc:
                LOG.warning("LISTEN connection lost, listening again in %.1f s: %s", pause_s, exc)
                if time.monotonic() - started > LISTEN_RETRY_MAX_S:
                    pause_s = LISTEN_RETRY_MIN_S
                stop.wait(pause_s)
                pause_s = min(pause_s * 2, LISTEN_RETRY_MAX_S)

    thread = threading.Thread(target=run, name="qosplane-listen", daemon=True)
    thread.start()
    return thread
