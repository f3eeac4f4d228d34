"""The LISTEN thread that wakes watchers across API workers survives losing its database
connection (issue 11: after a PostgreSQL restart it died and wake-ups were gone for good).
The connection is cut with pg_terminate_backend, as a restart or failover cuts it."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from qosplane.store.database import NOTIFY_CHANNEL, listen_host_changes, make_engine


@pytest.mark.postgres
def test_the_listen_thread_listens_again_after_its_connection_is_cut(pg_url: str) -> None:
    engine = make_engine(pg_url)
    heard: list[frozenset[str]] = []
    stop = threading.Event()
    thread = listen_host_changes(engine, heard.append, stop)
    assert thread is not None
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def notify_until_heard(host: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, host))
                if any(host in hosts for hosts in heard):
                    return True
                time.sleep(0.1)
        return False

    def listeners(conn: psycopg.Connection[tuple[int]]) -> list[int]:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s AND datname = current_database()",
            (f"LISTEN {NOTIFY_CHANNEL}",),
        ).fetchall()
        return [pid for (pid,) in rows]

    try:
        assert notify_until_heard("before", 10)
        with psycopg.connect(dsn, autocommit=True) as admin:
            pids = listeners(admin)
            assert pids, "the LISTEN connection is not to be seen"
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert notify_until_heard("after", 15), "no wake-up after the connection was cut"
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()
