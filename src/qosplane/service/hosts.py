"""The native hosts API's plan-affecting operation: an agent registering its host's facts.

Plans are compiled against the facts of their host (how taps are wired, the cgroup version,
the switch). A server placed before its host's agent registered was compiled against the
default facts (the seed's OVS host); when the agent registers different ones, every plan on
that host is recompiled, or the agent would apply a plan written for another machine.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from qosplane.model.host_facts import HostFacts
from qosplane.service.plans import HostFactsChanged, Replanner
from qosplane.store.hosts import HostRepository
from qosplane.store.tables import HostRow


class HostService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.hosts = HostRepository(session)
        self.plans = Replanner(session)

    def register(self, name: str, facts: HostFacts) -> HostRow:
        known = self.session.get(HostRow, name)
        facts_before = known.facts if known is not None else None
        row = self.hosts.register(name, facts)
        if row.facts != facts_before:
            self.plans.recompile(self.plans.affected(HostFactsChanged(name)))
        self.hosts.agent_spoke(row.name)
        return row
