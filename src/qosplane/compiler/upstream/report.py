"""The readable per-layer report of `qosplane plan` without --json."""

from __future__ import annotations

import shlex
from typing import Any

from qosplane.compiler.upstream.plan import HostPlan


def _limit_text(limit: dict[str, int] | None) -> str:
    if not limit:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in limit.items())


def render_report(plan: HostPlan) -> str:
    return render_report_json(plan.to_json())


def render_report_json(data: dict[str, Any]) -> str:
    """The report from a plan's JSON form (as stored by the API)."""
    inst = data["instance"]
    out = [f"Plan for {inst['name']} ({inst['uuid']}) on {data['host']}", ""]
    out.append("== Effective QoS (guest-relative; ingress = to the instance) ==")
    if not data["effective"]:
        out.append("  no limits declared")
    for e in data["effective"]:
        direction = f" {e['direction']}" if e["direction"] else ""
        out.append(f"  {e['device']}{direction} {e['kind']}: {_limit_text(e['limit'])}")
        if e["enforced_by"]:
            by = e["enforced_by"]
            out.append(
                f"      enforced by {by['layer']}: {by['artifact']} ({by['mechanism']}: {by['as_written']})"
            )
        else:
            out.append("      NOT ENFORCED")
        for d in e["declared"]:
            out.append(f"      declared: {d['source']}: {d['key']} = {d['value']}")
        out += [f"      conflict: {c}" for c in e["conflicts"]]
        out += [f"      loss: {loss}" for loss in e["losses"]]
    out += ["", "== cgroup =="]
    for version, files in data["cgroup"].items():
        for name, value in files.items():
            out.append(f"  {version} {name} = {value}")
    out += ["", "== QEMU -drive =="]
    for target, drive in data["qemu_drives"].items():
        out.append(f"  {target}: -drive {drive}")
    out += ["", "== tc (libvirt) =="]
    if not data["tc"]:
        out.append("  nothing")
    for dev, cmds in data["tc"].items():
        out.append(f"  {dev}:")
        out += [f"    {shlex.join(c)}" for c in cmds]
    out += ["", "== Open vSwitch =="]
    if not data["ovs"]:
        out.append("  nothing")
    out += [f"  {shlex.join(c)}" for c in data["ovs"]]
    for title, items in (("Errors", data["errors"]), ("Warnings", data["warnings"])):
        out += ["", f"== {title} =="]
        if not items:
            out.append("  none")
        out += [f"  [{f['code']}] {f['message']}" for f in items]
    out += ["", "(libvirt domain XML: use --json, key domain_xml)"]
    return "\n".join(out) + "\n"
