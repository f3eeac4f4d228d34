"""The tables. Quantities are stored in the model's canonical units, names carry the unit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    MetaData,
    String,
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
