"""Hosts, aggregates, availability zones and the desired-state revision of each host.

A host is a registered agent. Nova's zones come from aggregates: a host in an aggregate
with an `availability_zone` is in that zone, any other host is in the default zone. Each
host carries one revision that grows whenever the desired state of any of its servers
changes (a plan recompiled, a server created or deleted); agents watch it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from qosplane.model.errors import INT32_MAX, Conflict, InvalidInput, NotFound, NoValidHost
from qosplane.model.host_facts import HostFacts
from qosplane.openstack.case import host_facts_from_case, host_facts_to_case
from qosplane.store.database import NOTIFY_CHANNEL, fetch
from qosplane.store.tables import AggregateHostRow, AggregateRow, HostRow, ServerRow
from qosplane.store.views import HostView

DEFAULT_ZONE = "nova"  # Nova's [DEFAULT]default_availability_zone
# A host whose agent has not sent a heartbeat for this long is reported down, as Nova's
# service_down_time (60 s) does for nova-compute.
HOST_DOWN_AFTER_S = 60


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Placement:
    host: str
    zone: str


class HostRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # hosts -----------------------------------------------------------------------------
    def register(self, name: str, facts: HostFacts | None = None) -> HostRow:
        """Create or refresh a host. Re-registering keeps its id, number and revision, so a
        restarted agent resumes watching where the API is."""
        if not name or len(name) > 255:
            raise InvalidInput("host.name", name, "a string of 1 to 255 characters")
        parsed = replace(facts or HostFacts(), hostname=name)  # a host is named once
        facts_json = json.dumps(host_facts_to_case(parsed), sort_keys=True)
        now = _stamp(_now())
        row = self.session.get(HostRow, name)
        if row is None:
            number = (self.session.scalar(select(func.max(HostRow.number))) or 0) + 1
            row = HostRow(
                name=name,
                id=str(uuid.uuid4()),
                number=number,
                facts=facts_json,
                registered_at=now,
                heartbeat_at=now,
                revision=0,
                applied_revision=0,
            )
            self.session.add(row)
        else:
            if row.facts != facts_json:
                row.facts = facts_json
                self._bump(name)  # new facts can change every plan on the host
            row.heartbeat_at = now
        self.session.flush()
        return row

    def agent_spoke(self, name: str) -> None:
        """Its agent registered, reported or sent a heartbeat just now."""
        self.get(name).agent_seen_at = _stamp(_now())

    def is_managed(self, name: str) -> bool:
        """Whether an agent ever spoke for this host: only then does anything run its
        servers (the all-in-one with --no-agent stores their plans and runs nothing)."""
        row = self.session.get(HostRow, name)
        return row is not None and row.agent_seen_at is not None

    def has_live_agent(self, name: str) -> bool:
        """Whether an agent manages this host: servers placed here wait in BUILD for it.
        Hosts without one (the all-in-one with --no-agent) only store plans."""
        row = self.session.get(HostRow, name)
        if row is None or row.agent_seen_at is None:
            return False
        return _now() - _parse(row.agent_seen_at) < timedelta(seconds=HOST_DOWN_AFTER_S)

    def ensure(self, name: str) -> HostRow:
        """The host, registered with default facts if it is new; an existing host keeps the
        facts its agent registered."""
        row = self.session.get(HostRow, name)
        return row if row is not None else self.register(name)

    def get(self, name: str) -> HostRow:
        return fetch(self.session, HostRow, name, "Host")

    def by_ref(self, ref: str) -> HostRow:
        """A host by name, Nova integer id or uuid."""
        row = self.session.get(HostRow, ref)
        if row is None:
            query = select(HostRow).where(HostRow.id == ref)
            if ref.isdigit() and int(ref) <= INT32_MAX:
                query = select(HostRow).where(HostRow.number == int(ref))
            row = self.session.scalars(query).first()
        if row is None:
            raise NotFound("Host", ref)
        return row

    def all(self) -> list[HostRow]:
        return list(self.session.scalars(select(HostRow).order_by(HostRow.number)))

    def facts(self, name: str) -> HostFacts:
        row = self.session.get(HostRow, name)
        if row is None:
            return HostFacts(hostname=name)
        return host_facts_from_case(json.loads(row.facts))

    def heartbeat(self, name: str, applied_revision: int | None = None) -> HostRow:
        row = self.get(name)
        row.heartbeat_at = _stamp(_now())
        row.agent_seen_at = row.heartbeat_at
        if applied_revision is not None:
            if not 0 <= applied_revision <= row.revision:
                raise InvalidInput(
                    "heartbeat.applied_revision",
                    applied_revision,
                    f"0 to the host's revision {row.revision}",
                )
            row.applied_revision = applied_revision
        return row

    @staticmethod
    def is_up(row: HostView, now: datetime | None = None) -> bool:
        """A host with an agent is up while the agent speaks; a host no agent ever spoke
        for (the all-in-one's own, with --no-agent) only stores plans and is always up."""
        if row.agent_seen_at is None:
            return True
        moment = now or _now()
        return moment - _parse(row.agent_seen_at) < timedelta(seconds=HOST_DOWN_AFTER_S)

    def bump(self, name: str) -> None:
        self._bump(name)

    def _bump(self, name: str) -> None:
        # One UPDATE, so concurrent writers on PostgreSQL serialize on the row instead of
        # losing an increment; a host that never registered has no watchers to wake.
        self.session.execute(
            update(HostRow).where(HostRow.name == name).values(revision=HostRow.revision + 1)
        )
        self.session.info.setdefault("bumped_hosts", set()).add(name)
        if self.session.get_bind().dialect.name == "postgresql":
            # Delivered at commit (never for a rollback) to every API worker's LISTEN thread.
            self.session.execute(
                text("SELECT pg_notify(:channel, :host)"), {"channel": NOTIFY_CHANNEL, "host": name}
            )

    def servers(self, name: str) -> list[ServerRow]:
        return list(
            self.session.scalars(
                select(ServerRow).where(ServerRow.host == name).order_by(ServerRow.number)
            )
        )

    # zones and placement ---------------------------------------------------------------
    def zone_of(self, name: str) -> str:
        zones = self.session.scalars(
            select(AggregateRow.availability_zone)
            .join(AggregateHostRow, AggregateHostRow.aggregate_id == AggregateRow.id)
            .where(AggregateHostRow.host == name, AggregateRow.availability_zone.is_not(None))
        ).all()
        return sorted(z for z in zones if z)[0] if any(zones) else DEFAULT_ZONE

    def zones(self) -> dict[str, list[str]]:
        """Zone name -> hosts in it. Zones of aggregates without hosts are not listed, as in
        Nova; the default zone is listed when some host is in it."""
        out: dict[str, list[str]] = {}
        for host in self.all():
            out.setdefault(self.zone_of(host.name), []).append(host.name)
        return out

    def place(self, zone: str | None, forced_host: str | None = None) -> Placement:
        """Pick a host for a new server: a live host of the zone with the fewest servers.

        `forced_host` is Nova's admin-only `zone:host` form."""
        zones = self.zones()
        live = {h.name for h in self.all() if self.is_up(h)}
        wanted = zone or DEFAULT_ZONE
        if zone is not None and zone not in zones:
            raise InvalidInput(
                "server.availability_zone",
                zone,
                f"one of {sorted(zones) or [DEFAULT_ZONE]}",
                "The requested availability zone is not available",
            )
        candidates = zones.get(wanted, [])
        if zone is None and not candidates:
            candidates = [h.name for h in self.all()]
        if forced_host is not None:
            if forced_host not in candidates:
                raise InvalidInput(
                    "server.availability_zone",
                    f"{wanted}:{forced_host}",
                    f"a host of zone {wanted}: {candidates}",
                    "No valid host was found",
                )
            candidates = [forced_host]
        candidates = [h for h in candidates if h in live]
        if not candidates:
            raise NoValidHost(
                f"There are not enough hosts available: no live host in zone {wanted} "
                f"(agents send a heartbeat at least every {HOST_DOWN_AFTER_S} s)."
            )
        counts: dict[str, int] = dict(
            self.session.execute(
                select(ServerRow.host, func.count()).group_by(ServerRow.host)
            ).all()
        )
        host = min(candidates, key=lambda h: (counts.get(h, 0), h))
        return Placement(host=host, zone=self.zone_of(host) if zone is None else wanted)

    # aggregates ------------------------------------------------------------------------
    def create_aggregate(self, name: str, zone: str | None) -> AggregateRow:
        if self.session.scalars(select(AggregateRow).where(AggregateRow.name == name)).first():
            raise Conflict("aggregate.name", f"Aggregate {name} already exists.")
        row = AggregateRow(
            uuid=str(uuid.uuid4()),
            name=name,
            availability_zone=zone,
            metadata_json=json.dumps({"availability_zone": zone} if zone else {}),
            created_at=_stamp(_now()),
        )
        self.session.add(row)
        self.session.flush()
        return row

    def aggregate(self, ref: str) -> AggregateRow:
        """An aggregate by Nova id or uuid; a name is not an id (404, as Nova answers)."""
        row = None
        if ref.isdigit() and int(ref) <= INT32_MAX:
            row = self.session.get(AggregateRow, int(ref))
        else:
            row = self.session.scalars(select(AggregateRow).where(AggregateRow.uuid == ref)).first()
        if row is None:
            raise NotFound("Aggregate", ref)
        return row

    def aggregates(self) -> list[AggregateRow]:
        return list(self.session.scalars(select(AggregateRow).order_by(AggregateRow.id)))

    def aggregate_hosts(self, aggregate_id: int) -> list[str]:
        return list(
            self.session.scalars(
                select(AggregateHostRow.host)
                .where(AggregateHostRow.aggregate_id == aggregate_id)
                .order_by(AggregateHostRow.host)
            )
        )

    def add_host(self, aggregate_id: int, host: str) -> None:
        agg = self.aggregate(str(aggregate_id))
        try:
            self.get(host)
        except NotFound:
            raise NotFound("Compute host", host) from None
        if host in self.aggregate_hosts(agg.id):
            raise Conflict("add_host.host", f"Aggregate {agg.id} already has host {host}.")
        if agg.availability_zone:
            current = self.zone_of(host)
            if current not in (DEFAULT_ZONE, agg.availability_zone):
                raise InvalidInput(
                    "add_host.host",
                    host,
                    f"a host not already in another zone (it is in {current})",
                    "Cannot add host to aggregate: host is in a different availability zone",
                )
        self.session.add(AggregateHostRow(aggregate_id=agg.id, host=host))
        self.session.flush()

    def remove_host(self, aggregate_id: int, host: str) -> None:
        agg = self.aggregate(str(aggregate_id))
        if host not in self.aggregate_hosts(agg.id):
            raise NotFound("Host in aggregate", f"{host} (aggregate {agg.id})")
        self.session.execute(
            delete(AggregateHostRow).where(
                AggregateHostRow.aggregate_id == agg.id, AggregateHostRow.host == host
            )
        )

    def set_metadata(self, aggregate_id: int, metadata: dict[str, str | None]) -> AggregateRow:
        agg = self.aggregate(str(aggregate_id))
        current: dict[str, str] = json.loads(agg.metadata_json)
        for key, value in metadata.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        agg.metadata_json = json.dumps(current, sort_keys=True)
        agg.availability_zone = current.get("availability_zone")
        return agg

    def update_aggregate(
        self, aggregate_id: int, name: str | None, zone: str | None
    ) -> AggregateRow:
        agg = self.aggregate(str(aggregate_id))
        if name is not None:
            agg.name = name
        if zone is not None:
            self.set_metadata(agg.id, {"availability_zone": zone})
        return agg

    def delete_aggregate(self, aggregate_id: int) -> None:
        agg = self.aggregate(str(aggregate_id))
        if self.aggregate_hosts(agg.id):
            raise InvalidInput(
                "aggregate",
                agg.id,
                "an aggregate with no hosts",
                f"Cannot remove aggregate {agg.id}: it still has hosts",
            )
        self.session.delete(agg)
