"""`qosplane explain --os-cloud`: a real cloud's server through the same compiler and the
same per-layer view as a server of qosplane's own store. Only the reading differs: there
is no agent's report, so each limit's "applied" says where to look instead, and the view
gains the facts the reading inferred (each with its source), its findings, and what the
credentials could not read."""

from __future__ import annotations

from typing import Any

from qosplane.cloud.intent import CloudCase, CloudRecords, case_of
from qosplane.compiler.upstream.plan import compile_plan
from qosplane.model.plan import DesiredServer, HostPlan
from qosplane.model.report import PlacedServer, ServerStatus
from qosplane.openstack.case import case_from_mapping
from qosplane.verify.explain import explain

NOT_APPLIED_HERE = "not known from the cloud's APIs: `qosplane inspect` on the host reads it"


def plan_of_records(records: CloudRecords) -> tuple[HostPlan, CloudCase]:
    """The plan a cloud's server compiles to, and the reading it came from."""
    read = case_of(records)
    instance, facts = case_from_mapping(read.case)
    return compile_plan(instance, facts), read


def explain_records(records: CloudRecords) -> tuple[dict[str, Any], CloudCase]:
    """The explain view of the server `records` describe, and the case it was compiled
    from (which `qosplane plan` reads as it is)."""
    plan, read = plan_of_records(records)
    server = records.server
    host = str(server.get("OS-EXT-SRV-ATTR:host") or "")
    status = str(server.get("status") or "")
    desired = DesiredServer(str(server["id"]), str(server.get("name") or ""), 0, plan, (), ())
    view = explain(
        PlacedServer(desired, status, host), ServerStatus(desired.id, status, host, 0, None, None)
    )
    for limit in view["limits"]:
        limit["applied"] = {"status": NOT_APPLIED_HERE}
    view["cloud"] = read.to_json()
    return view, read
