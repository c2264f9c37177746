"""The lcm-adapter's own tables: NS records, VNF configurations and a ledger of effects."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table

METADATA = MetaData()
"""The lcm-adapter's tables (created at start)."""

NS_RECORDS = Table(
    "lcm_ns_records",
    METADATA,
    Column("ns_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("nsd_id", String(200), nullable=False),
    Column("vim_account_id", String(128), nullable=False),
    Column("vnfs", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("detail", String(1000), nullable=False, default=""),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)
"""One row per NS: its descriptor, VIM account and operational state."""

VNF_CONFIGS = Table(
    "lcm_vnf_configs",
    METADATA,
    Column("ns_id", String(128), primary_key=True),
    Column("vnf", String(100), primary_key=True),
    Column("config_id", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("server_ids", JSON, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
"""The day-1 configuration applied to each VNF of an NS."""

LEDGER = Table(
    "lcm_ledger",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_id", String(128), nullable=False, index=True),
    Column("step", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("effect", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
"""Every effect the adapter had, with the saga step that caused it (for audits and tests)."""
