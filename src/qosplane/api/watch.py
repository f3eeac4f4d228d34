"""Wakes long-polling agents when their host's revision changes.

The store calls `changed` after a commit that bumped hosts (from any thread); a watcher
takes its host's event *before* reading the revision, so a bump between the read and the
wait still wakes it. Across API workers on PostgreSQL the same call comes from the
LISTEN thread (store.database.listen_host_changes).
"""

from __future__ import annotations

import asyncio


class HostWatch:
    def __init__(self, recheck_s: float = 1.0) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # A watcher re-reads the revision at least this often, so a wake-up lost between
        # API workers (SQLite, or PostgreSQL without the LISTEN thread) costs at most this.
        self.recheck_s = recheck_s

    def event(self, host: str) -> asyncio.Event:
        """The event the next change of `host` sets. Call from the event loop."""
        self._loop = asyncio.get_running_loop()
        return self._events.setdefault(host, asyncio.Event())

    def is_watched(self, host: str) -> bool:
        """Whether some request waits on `host` now (tests use it to avoid a race)."""
        return host in self._events

    def changed(self, hosts: frozenset[str]) -> None:
        """Wake every watcher of `hosts`; safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake, hosts)

    def _wake(self, hosts: frozenset[str]) -> None:
        for host in hosts:
            event = self._events.pop(host, None)
            if event is not None:
                event.set()
