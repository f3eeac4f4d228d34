"""`qosplane explain`: one view per device and direction, guest-relative, of what was
declared and where, what was compiled, what this host applied (or why not), whether it
drifted, what was last measured, and what really holds with its conflicts and losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qosplane.model.plan import EffectiveLimit
from qosplane.model.report import PlacedServer, ServerStatus

_DEVICE_SIDE = {
    "ingress": "to the instance: the host side's egress (root qdisc)",
    "egress": "from the instance: the host side's ingress",
    "read": "disk reads",
    "write": "disk writes",
    "total": "disk reads and writes",
    "": "",
}


def _tap(entry: EffectiveLimit) -> str:
    if entry.port_id:
        return ("tap" + entry.port_id)[:14]
    return entry.device


def _canonical(limit: Mapping[str, int] | None) -> str:
    if not limit:
        return "none holds"
    parts = []
    for key, value in limit.items():
        if key.endswith("_bits_per_s"):
            parts.append(f"{key}={value} ({value / 1e6:g} Mbit/s)")
        elif key.endswith("_bytes"):
            parts.append(f"{key}={value} ({value / 1024:g} KiB)")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def explain(placed: PlacedServer, status: ServerStatus) -> dict[str, Any]:
    """The view `qosplane explain --json` prints (its JSON is the output, so it is built
    here as JSON): one entry per effective limit of the plan."""
    plan, plan_revision = placed.desired.plan, placed.desired.plan_revision
    report, measurements = status.report, status.measurements
    rules = {(r.kind, r.device, r.direction): r.to_json() for r in report.rules} if report else {}
    verdicts = (
        {(v.kind, v.device, v.direction): v.to_json() for v in measurements.verdicts}
        if measurements
        else {}
    )
    last_drift = report.last_drift if report else None
    drift = [d.to_json() | {"at": last_drift.at} for d in last_drift.drift] if last_drift else []
    current = report is not None and report.plan_revision == plan_revision
    limits = []
    for entry in plan.effective:
        device = _tap(entry)
        key = (entry.kind, device, entry.direction)
        enforced = entry.effective()
        limit = enforced.limit.to_json() if enforced is not None else None
        limits.append(
            {
                "device": device,
                "plan_device": entry.device,
                "direction": entry.direction,
                "meaning": _DEVICE_SIDE.get(entry.direction, entry.direction),
                "kind": entry.kind,
                "declared": [d.to_json() for d in entry.declared],
                "compiled": [
                    {
                        "layer": a.layer,
                        "artifact": a.artifact,
                        "as_written": a.as_written,
                        "holds": a.holds,
                    }
                    for a in entry.candidates
                ],
                "effective": {
                    "limit": limit,
                    "canonical": _canonical(limit),
                    "as_written": enforced.as_written if enforced else "",
                    "by": enforced.layer if enforced else "",
                    "note": enforced.note if enforced else "",
                },
                "conflicts": list(entry.conflicts),
                "losses": list(entry.losses),
                "applied": rules.get(key, {"status": "not reported yet"})
                if current
                else {"status": "agent has not applied this revision yet"},
                "drift": [d for d in drift if d.get("device") in (device, "ifb" + device[3:])],
                "measured": verdicts.get(key),
            }
        )
    return {
        "server": {
            "id": placed.desired.id,
            "name": placed.desired.name,
            "status": status.status,
            "host": placed.host,
            "instance": plan.instance_name,
            "plan_revision": plan_revision,
            "applied_revision": report.plan_revision if report else None,
            "measured_at": measurements.measured_at if measurements else None,
        },
        "limits": limits,
        "errors": [f.to_json() for f in plan.errors],
        "warnings": [f.to_json() for f in plan.warnings],
    }


def render_explain(view: Mapping[str, Any]) -> str:
    s = view["server"]
    lines = [
        f"{s['name']} ({s['id']}) {s['status']} on {s['host']} as {s['instance']}",
        f"plan revision {s['plan_revision']}, applied {s['applied_revision']}, "
        f"measured {s['measured_at'] or 'never'}",
        "",
    ]
    for item in view["limits"]:
        head = f"{item['device']} {item['kind']} {item['direction'] or ''}".rstrip()
        lines.append(f"{head}  [{item['meaning']}]" if item["meaning"] else head)
        for d in item["declared"]:
            lines.append(f"  declared  {d['source']}: {d['key']} = {d['value']}")
        for c in item["compiled"]:
            holds = "" if c["holds"] else "  (does not hold)"
            lines.append(f"  compiled  {c['layer']}: {c['artifact']}: {c['as_written']}{holds}")
        eff = item["effective"]
        lines.append(f"  effective {eff['canonical']}" + (f" by {eff['by']}" if eff["by"] else ""))
        if eff["note"]:
            lines.append(f"            {eff['note']}")
        applied = item["applied"]
        mech = f" by {applied['mechanism']}" if applied.get("mechanism") else ""
        why = f": {applied['reason']}" if applied.get("reason") else ""
        lines.append(f"  applied   {applied['status']}{mech}{why}")
        if applied.get("held_as"):
            lines.append(f"  on host   {applied['held_as']}")
        for d in item["drift"]:
            lines.append(
                f"  drifted   {d['aspect']}: found {d['observed']}, restored {d['desired']}"
            )
        measured = item["measured"]
        if measured:
            outcome = str(measured.get("outcome", "pass" if measured["passed"] else "fail"))
            path = measured.get("capacity")
            lines.append(
                f"  measured  {measured['measured']:.0f} {measured['unit']} vs expected "
                f"{measured['expected']:.0f} (±{measured['tolerance']:.0%}): "
                + (outcome if outcome == "pass" else outcome.upper())
                + ("" if path is None else f"; the path carries {path:.0f} unlimited")
            )
        for text in item["conflicts"]:
            lines.append(f"  conflict  {text}")
        for text in item["losses"]:
            lines.append(f"  lost      {text}")
        lines.append("")
    cloud = view.get("cloud")
    if cloud:  # explain --os-cloud: what the reading inferred, found and could not read
        for fact in cloud["facts"]:
            lines.append(f"fact: {fact['name']} = {fact['value']} (from {fact['source']})")
        for finding in cloud["findings"]:
            lines.append(f"finding: {finding['message']}")
        for item in cloud["unreadable"]:
            lines.append(f"not read: {item['what']}: {item['why']}")
    for finding in view["errors"]:
        lines.append(f"error: {finding.get('message', finding)}")
    for finding in view["warnings"]:
        lines.append(f"warning: {finding.get('message', finding)}")
    return "\n".join(lines).rstrip() + "\n"
