"""`qosplane serve --workers N` on PostgreSQL: N real processes on one port, and the
concurrency cases of issue 11 sent through them lose nothing and never answer 5xx."""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from qosplane.client.http import Credentials, QosplaneClient
from qosplane.model.errors import QosplaneError, RevisionMismatch
from tests.serving import QOSPLANE, running_serve

NET = "/networking/v2.0"
WRITERS = 4
REQUESTS = 20


def _admin(state: Path, endpoint: str) -> QosplaneClient:
    admin = json.loads((state / "admin.json").read_text())
    return QosplaneClient(Credentials(endpoint, "admin", admin["password"], "admin"))


@pytest.mark.postgres
def test_workers_serve_one_port_and_lose_no_update(tmp_path: Path, pg_url: str) -> None:
    with running_serve(tmp_path, 90, ("--db", pg_url, "--workers", "2")) as endpoint:
        serve_pid = subprocess.run(
            ["pgrep", "-f", f"{QOSPLANE} serve --no-agent --state-dir {tmp_path}"],
            capture_output=True,
            check=False,
            text=True,
        ).stdout.split()
        assert len(serve_pid) == 1, serve_pid
        children = subprocess.run(
            ["pgrep", "-P", serve_pid[0], "-f", "multiprocessing.spawn"],
            capture_output=True,
            check=False,
            text=True,
        ).stdout.split()
        assert len(children) == 2, "two worker processes"
        client = _admin(tmp_path, endpoint)
        net = client.call("POST", f"{NET}/networks", {"network": {"name": "n"}})["network"]["id"]
        port = client.call("POST", f"{NET}/ports", {"port": {"network_id": net}})["port"]["id"]
        before = client.get(f"{NET}/ports/{port}")["port"]["revision_number"]
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def write() -> None:
            mine = _admin(tmp_path, endpoint)  # a connection of its own
            for i in range(REQUESTS):
                seen = mine.get(f"{NET}/ports/{port}")["port"]["revision_number"]
                # Odd requests rename without If-Match, even ones rebind with it.
                body = {"port": {"name": f"w{i}"}} if i % 2 else {"port": {"qos_policy_id": None}}
                headers = {} if i % 2 else {"If-Match": f"revision_number={seen}"}
                try:
                    mine.call("PUT", f"{NET}/ports/{port}", body, headers=headers)
                    outcome = "ok"
                except RevisionMismatch:
                    outcome = "412"
                except QosplaneError as exc:  # a 5xx is a ServiceFault: counted, then failed
                    outcome = f"error: {exc}"
                with lock:
                    outcomes[outcome] += 1

        threads = [threading.Thread(target=write) for _ in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert set(outcomes) <= {"ok", "412"}, outcomes
        after = client.get(f"{NET}/ports/{port}")["port"]["revision_number"]
        renames = WRITERS * REQUESTS // 2  # no If-Match: each must count
        assert after - before == outcomes["ok"], outcomes
        assert outcomes["ok"] >= renames


def test_more_than_one_worker_needs_postgresql(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(QOSPLANE), "serve", "--state-dir", str(tmp_path), "--workers", "2", "--no-agent"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--workers above 1 needs PostgreSQL" in done.stderr
