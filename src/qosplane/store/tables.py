"""The tables. Quantities are stored in the model's canonical units, names carry the unit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FlavorRow(Base):
    __tablename__ = "flavors"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap_mb: Mapped[int] = mapped_column(Integer, default=0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    # Nova 2.55; kept beside the model Flavor, which holds what plans compile from.
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class FlavorAccessRow(Base):
    """A project allowed to see and use a private flavor."""

    __tablename__ = "flavor_access"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class FlavorExtraSpecRow(Base):
    __tablename__ = "flavor_extra_specs"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class QosPolicyRow(Base):
    __tablename__ = "qos_policies"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class RbacPolicyRow(Base):
    """One Neutron RBAC entry: `object_id` shared with `target_project` (or `*`)."""

    __tablename__ = "rbac_policies"
    __table_args__ = (
        UniqueConstraint("object_id", "action", "target_project", name="uq_rbac_policies_target"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(
        ForeignKey("qos_policies.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    target_project: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64))


class QosPolicyTagRow(Base):
    __tablename__ = "qos_policy_tags"
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("qos_policies.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class QosRuleRow(Base):
    """One row per rule; the unique key is Neutron's one-rule-per-type-and-direction, so a
    race between two API workers cannot create a duplicate either."""

    __tablename__ = "qos_rules"
    __table_args__ = (
        UniqueConstraint("policy_id", "rule_type", "direction", name="uq_qos_rules_type_direction"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("qos_policies.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    rule_type: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))
    max_rate_bits_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_burst_bits: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_rate_bits_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_rate_packets_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_burst_packets: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_rate_packets_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dscp_mark: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RecordRow(Base):
    """Resources qosplane only records (images, keypairs, security groups): their API body
    is kept whole, with the fields lookups need as columns."""

    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("kind", "id", name="uq_records_kind_id"),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)


class NetworkRow(Base):
    __tablename__ = "networks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    network_type: Mapped[str] = mapped_column(String(32), default="")
    physical_network: Mapped[str] = mapped_column(String(64), default="")
    qos_policy_id: Mapped[str | None] = mapped_column(ForeignKey("qos_policies.id"), nullable=True)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class SubnetRow(Base):
    __tablename__ = "subnets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64))
    cidr: Mapped[str] = mapped_column(String(64))
    ip_version: Mapped[int] = mapped_column(Integer)
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pool_start: Mapped[str] = mapped_column(String(64))
    pool_end: Mapped[str] = mapped_column(String(64))


class PortRow(Base):
    __tablename__ = "ports"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(String(64))
    mac_address: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    binding_host_id: Mapped[str] = mapped_column(String(255), default="")
    qos_policy_id: Mapped[str | None] = mapped_column(ForeignKey("qos_policies.id"), nullable=True)
    security_groups: Mapped[str] = mapped_column(Text, default="[]")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    # Created on its own, then given to a server: unbound, not deleted, with the server.
    preserve_on_delete: Mapped[bool] = mapped_column(Boolean, default=False)


class PortIpRow(Base):
    __tablename__ = "port_ips"
    __table_args__ = (UniqueConstraint("subnet_id", "ip_address", name="uq_port_ips_subnet_ip"),)
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True
    )
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64))


class ServerRow(Base):
    __tablename__ = "servers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)  # instance-%08x
    name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    flavor_id: Mapped[str] = mapped_column(ForeignKey("flavors.id"))
    image_id: Mapped[str] = mapped_column(String(255))
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    availability_zone: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))
    admin_pass: Mapped[str] = mapped_column(String(64))
    plan_json: Mapped[str] = mapped_column(Text, default="")
    plan_revision: Mapped[int] = mapped_column(Integer, default=0)
    port_ids: Mapped[str] = mapped_column(Text, default="[]")  # in NIC order
    # The agent's last report on this server: JSON {revision, status, rules: [...]}.
    agent_report: Mapped[str] = mapped_column(Text, default="{}")
    # `qosplane verify`'s last verdicts: JSON {measured_at, verdicts: [...]}.
    measurements: Mapped[str] = mapped_column(Text, default="{}")


class QosSpecRow(Base):
    __tablename__ = "qos_specs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    consumer: Mapped[str] = mapped_column(String(16))
    specs: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of strings


class VolumeTypeRow(Base):
    __tablename__ = "volume_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    qos_specs_id: Mapped[str | None] = mapped_column(ForeignKey("qos_specs.id"), nullable=True)


class VolumeTypeExtraSpecRow(Base):
    __tablename__ = "volume_type_extra_specs"
    volume_type_id: Mapped[str] = mapped_column(
        ForeignKey("volume_types.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class VolumeTypeEncryptionRow(Base):
    """A volume type's encryption specs; the key size is in bits (Cinder's `key_size`)."""

    __tablename__ = "volume_type_encryption"
    volume_type_id: Mapped[str] = mapped_column(
        ForeignKey("volume_types.id", ondelete="CASCADE"), primary_key=True
    )
    encryption_id: Mapped[str] = mapped_column(String(36), unique=True)
    provider: Mapped[str] = mapped_column(String(255))
    cipher: Mapped[str | None] = mapped_column(String(255), nullable=True)
    key_size_bits: Mapped[int | None] = mapped_column(Integer, nullable=True)
    control_location: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class VolumeRow(Base):
    __tablename__ = "volumes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    size_gb: Mapped[int] = mapped_column(Integer)
    volume_type_id: Mapped[str | None] = mapped_column(ForeignKey("volume_types.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))
    server_id: Mapped[str | None] = mapped_column(
        ForeignKey("servers.id"), nullable=True, index=True
    )
    attachment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    attached_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ProjectRow(Base):
    """A project, or with `is_domain` a domain (Keystone stores both in one table; a
    domain's own `domain_id` is the root sentinel)."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Attributes Keystone does not know, kept and returned (JSON object); tags (JSON list).
    extra_json: Mapped[str] = mapped_column(Text, default="{}")
    tags_json: Mapped[str] = mapped_column(Text, default="[]")


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    password_hash: Mapped[str] = mapped_column(String(255))
    default_project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Every token of this user issued before this instant is void (disable, password
    # change): Keystone's revocation event on the user (keystone/identity/core.py).
    tokens_revoked_before_unix_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    extra_json: Mapped[str] = mapped_column(Text, default="{}")


class RoleAssignmentRow(Base):
    """A role granted to a user on a project, or on a domain (a project row with
    `is_domain`); which one the target row says."""

    __tablename__ = "role_assignments"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)  # a RoleRow id


class GroupRow(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(255), default="")
    extra_json: Mapped[str] = mapped_column(Text, default="{}")


class GroupMemberRow(Base):
    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class GroupRoleAssignmentRow(Base):
    """A role granted to a group on a project or a domain (`target_id`): every member
    holds it there."""

    __tablename__ = "group_role_assignments"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class SystemGroupRoleAssignmentRow(Base):
    """A role on the system granted to a group: every member holds it there."""

    __tablename__ = "system_group_role_assignments"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class SystemRoleAssignmentRow(Base):
    """A role on the system (Keystone's system scope), not on a project."""

    __tablename__ = "system_role_assignments"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class RoleRow(Base):
    """A Keystone role: the four defaults (id = name) and any an operator creates."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("name", "domain_id", name="uq_roles_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(String(255), default="")


class ImpliedRoleRow(Base):
    __tablename__ = "implied_roles"
    prior_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    implied_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class RevokedTokenRow(Base):
    """A token revoked by `DELETE /v3/auth/tokens`, kept until it would have expired."""

    __tablename__ = "revoked_tokens"
    audit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at_unix_s: Mapped[float] = mapped_column(Float)


class HostRow(Base):
    """A registered agent. `revision` counts changes to the desired state of its servers;
    `applied_revision` is the last one the agent reported as converged."""

    __tablename__ = "hosts"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)  # Nova's integer hypervisor id
    facts: Mapped[str] = mapped_column(Text)  # JSON, the case file's `host` mapping
    registered_at: Mapped[str] = mapped_column(String(32))
    heartbeat_at: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    applied_revision: Mapped[int] = mapped_column(Integer, default=0)
    agent_seen_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AggregateRow(Base):
    __tablename__ = "aggregates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_json: Mapped[str] = mapped_column("metadata", Text, default="{}")
    created_at: Mapped[str] = mapped_column(String(32))


class AggregateHostRow(Base):
    __tablename__ = "aggregate_hosts"
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(
        ForeignKey("hosts.name", ondelete="CASCADE"), primary_key=True
    )
