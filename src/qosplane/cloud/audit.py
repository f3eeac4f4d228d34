"""`qosplane audit --os-cloud`: every server the credentials see, each through the same
compiler as `explain`, summarised as one table of findings: each finding's code, how many
servers have it and which, and one of its messages. The codes are the plan's own
(double_limit, police_deleted_by_ovs, burst_below_mtu, not_enforceable...) and the
reading's (flavor_changed_since_boot...), so a row of the table and a line of `explain`
use the same words."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from qosplane.cloud.explain import explain_records
from qosplane.cloud.intent import CloudRecords
from qosplane.model.errors import QosplaneError

SHOWN_SERVERS = 5
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)  # per row of the text table; --json lists them all


def audit_of(records: Iterable[CloudRecords]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, int] = {}
    failed: list[dict[str, str]] = []
    count = 0
    for record in records:
        count += 1
        server_id = str(record.server["id"])
        name = str(record.server.get("name") or server_id)
        try:
            view, read = explain_records(record)
        except QosplaneError as exc:  # a server whose intent does not compile: said, not fatal
            failed.append({"server": name, "error": str(exc)})
            continue
        findings = [
            *(("error", f) for f in view["errors"]),
            *(("warning", f) for f in view["warnings"]),
            *(("reading", f.to_json()) for f in read.findings),
        ]
        for severity, finding in findings:
            row = rows.setdefault(
                finding["code"],
                {"code": finding["code"], "severity": severity, "servers": [], "ids": [],
                 "example": finding["message"]},
            )  # fmt: skip
            if server_id not in row["ids"]:  # once per server, two of one name apart
                row["ids"].append(server_id)
                row["servers"].append(name)
        # One row per kind of read, not per object; each server counted once per kind.
        for kind in sorted({_UUID.sub("<id>", what) for what, _ in read.unreadable}):
            unreadable[kind] = unreadable.get(kind, 0) + 1
    table = sorted(rows.values(), key=lambda r: (-len(r["servers"]), r["code"]))
    for row in table:
        row["count"] = len(row["servers"])
    return {
        "servers": count,
        "findings": table,
        "unreadable": [{"what": w, "servers": n} for w, n in sorted(unreadable.items())],
        "failed": failed,
    }


def render_audit(view: Mapping[str, Any]) -> str:
    lines = [f"{view['servers']} servers read", ""]
    if view["findings"]:
        lines.append(f"{'servers':>7}  {'finding':<28} example")
    for row in view["findings"]:
        names = ", ".join(row["servers"][:SHOWN_SERVERS])
        more = len(row["servers"]) - SHOWN_SERVERS
        lines.append(f"{row['count']:>7}  {row['code']:<28} {row['example']}")
        lines.append(f"{'':>7}  {'':<28} on {names}" + (f" and {more} more" if more > 0 else ""))
    if not view["findings"]:
        lines.append("no findings")
    for item in view["unreadable"]:
        lines.append(f"not read: {item['what']} (for {item['servers']} servers)")
    for item in view["failed"]:
        lines.append(f"not compiled: {item['server']}: {item['error']}")
    return "\n".join(lines).rstrip() + "\n"
