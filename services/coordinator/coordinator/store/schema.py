"""Schema migrations: apply them (`convection db upgrade`) and check a database is current.

The coordinator refuses to start on a database whose schema is behind the code's migrations:
it would write rows the tables cannot hold. The message names the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.errors import SchemaBehind

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The alembic script directory of the coordinator."""

UPGRADE_COMMAND = "convection db upgrade"
"""The command that brings a database's schema up to date."""


def alembic_config(url: str | None = None) -> Config:
    """Return an alembic Config for the coordinator's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision of the migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(url: str) -> None:
    """Apply every migration to the database at `url` (not from inside an event loop)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Apply every migration through an open engine (from inside an event loop)."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the database's schema revision, None when it was never migrated."""

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def check_schema(engine: AsyncEngine) -> None:
    """Raise SchemaBehind unless the database is at the head revision."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaBehind(
            f"the database schema is at revision {current or '(none)'}, the coordinator needs "
            f"{head}: run `{UPGRADE_COMMAND}` (with CONVECTION_DB_URL set, or --db-url)"
        )
