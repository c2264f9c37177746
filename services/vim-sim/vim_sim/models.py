"""Tables of the simulator, all prefixed `vimsim_`, created with `create_all` at start.

Deleted servers, networks and subnets are removed from their tables; the ledger keeps the history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the simulator stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give back UTC-aware datetimes, also where the driver returns naive ones."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the simulator's tables (its metadata is the whole schema)."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Project(Base):
    """A project, i.e. one VIM account, with its only user and its quota."""

    __tablename__ = "vimsim_projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    user_name: Mapped[str] = mapped_column(String(255))
    password: Mapped[str] = mapped_column(String(255))
    quota_cores: Mapped[int] = mapped_column(Integer)
    quota_instances: Mapped[int] = mapped_column(Integer)
    # Bumped by every write to the project's resources: the UPDATE is what serialises them.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class Token(Base):
    """An identity token scoped to one project."""

    __tablename__ = "vimsim_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("vimsim_projects.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Network(Base):
    """A Neutron network."""

    __tablename__ = "vimsim_networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[str]]
    saga_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime]


class Subnet(Base):
    """A Neutron subnet; deleted with its network."""

    __tablename__ = "vimsim_subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_projects.id", ondelete="CASCADE"), index=True
    )
    network_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_networks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    cidr: Mapped[str] = mapped_column(String(64))
    ip_version: Mapped[int] = mapped_column(Integer)
    gateway_ip: Mapped[str | None] = mapped_column(String(64))
    saga_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime]


class Server(Base):
    """A Nova server; its status is derived from `created_at` when read."""

    __tablename__ = "vimsim_servers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    image_id: Mapped[str] = mapped_column(String(64))
    flavor_id: Mapped[str] = mapped_column(String(64))
    # Copied from the flavor so the quota is a plain SUM.
    vcpus: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    saga_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime]


class Port(Base):
    """A server's interface on a network; what makes a network "in use"."""

    __tablename__ = "vimsim_ports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    server_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_servers.id", ondelete="CASCADE"), index=True
    )
    network_id: Mapped[str] = mapped_column(ForeignKey("vimsim_networks.id"), index=True)
    subnet_id: Mapped[str | None] = mapped_column(ForeignKey("vimsim_subnets.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    mac_address: Mapped[str] = mapped_column(String(17))


class IdempotentReply(Base):
    """The reply to a successful create that carried `X-Idempotency-Key`, replayed on repeats."""

    __tablename__ = "vimsim_idempotency"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("vimsim_projects.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class LedgerEntry(Base):
    """One effect on the simulated VIM, with the saga step that asked for it."""

    __tablename__ = "vimsim_ledger"
    __table_args__ = (Index("ix_vimsim_ledger_saga_step", "saga_id", "step", "action"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    saga_id: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    operation: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(36))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
