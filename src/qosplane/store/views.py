"""What the API reads of stored resources: read-only views of the rows repositories return.

The API renders and checks resources through these and cannot assign to them (mypy refuses
a write to a read-only property), so every change goes through a repository or a service,
where plans are recompiled; and the API names no table class (issue 9: API modules never
import row classes). The ORM rows satisfy these protocols as they are.
"""

from __future__ import annotations

from typing import Protocol


class HostView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def number(self) -> int: ...

    @property
    def facts(self) -> str: ...

    @property
    def registered_at(self) -> str: ...

    @property
    def heartbeat_at(self) -> str: ...

    @property
    def revision(self) -> int: ...

    @property
    def applied_revision(self) -> int: ...

    @property
    def agent_seen_at(self) -> str | None: ...


class AggregateView(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def uuid(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def availability_zone(self) -> str | None: ...

    @property
    def metadata_json(self) -> str: ...

    @property
    def created_at(self) -> str: ...


class ServerView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def number(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def flavor_id(self) -> str: ...

    @property
    def image_id(self) -> str: ...

    @property
    def key_name(self) -> str | None: ...

    @property
    def availability_zone(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def created_at(self) -> str: ...

    @property
    def admin_pass(self) -> str: ...

    @property
    def plan_json(self) -> str: ...

    @property
    def plan_revision(self) -> int: ...

    @property
    def port_ids(self) -> str: ...

    @property
    def agent_report(self) -> str: ...

    @property
    def measurements(self) -> str: ...


class NetworkView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def shared(self) -> bool: ...

    @property
    def mtu(self) -> int: ...

    @property
    def network_type(self) -> str: ...

    @property
    def physical_network(self) -> str: ...

    @property
    def qos_policy_id(self) -> str | None: ...

    @property
    def revision_number(self) -> int: ...


class SubnetView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def network_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def cidr(self) -> str: ...

    @property
    def ip_version(self) -> int: ...

    @property
    def gateway_ip(self) -> str | None: ...

    @property
    def pool_start(self) -> str: ...

    @property
    def pool_end(self) -> str: ...


class PortView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def network_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def mac_address(self) -> str: ...

    @property
    def device_id(self) -> str: ...

    @property
    def device_owner(self) -> str: ...

    @property
    def binding_host_id(self) -> str: ...

    @property
    def qos_policy_id(self) -> str | None: ...

    @property
    def security_groups(self) -> str: ...

    @property
    def revision_number(self) -> int: ...

    @property
    def preserve_on_delete(self) -> bool: ...


class QosSpecView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def consumer(self) -> str: ...

    @property
    def specs(self) -> str: ...


class VolumeTypeView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    @property
    def is_public(self) -> bool: ...

    @property
    def qos_specs_id(self) -> str | None: ...


class VolumeView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def size_gb(self) -> int: ...

    @property
    def volume_type_id(self) -> str | None: ...

    @property
    def status(self) -> str: ...

    @property
    def created_at(self) -> str: ...

    @property
    def server_id(self) -> str | None: ...

    @property
    def attachment_id(self) -> str | None: ...

    @property
    def attached_at(self) -> str | None: ...


class ProjectView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def extra_json(self) -> str: ...

    @property
    def tags_json(self) -> str: ...

    @property
    def domain_id(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...

    @property
    def is_domain(self) -> bool: ...


class UserView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def domain_id(self) -> str: ...

    @property
    def default_project_id(self) -> str | None: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def description(self) -> str: ...

    @property
    def email(self) -> str | None: ...

    @property
    def extra_json(self) -> str: ...


class GroupView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def domain_id(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def extra_json(self) -> str: ...


class RoleView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def domain_id(self) -> str | None: ...

    @property
    def description(self) -> str: ...


class RbacPolicyView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def object_type(self) -> str: ...

    @property
    def object_id(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def target_project(self) -> str: ...

    @property
    def project_id(self) -> str: ...


class EncryptionView(Protocol):
    @property
    def volume_type_id(self) -> str: ...

    @property
    def encryption_id(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def cipher(self) -> str | None: ...

    @property
    def key_size_bits(self) -> int | None: ...

    @property
    def control_location(self) -> str: ...

    @property
    def created_at(self) -> str: ...

    @property
    def updated_at(self) -> str | None: ...
