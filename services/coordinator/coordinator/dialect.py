"""Where PostgreSQL and SQLite differ, in one place: clock, row locks, upserts, NOTIFY, errors.

PostgreSQL is the production store: the database clock, `FOR UPDATE [SKIP LOCKED]` and
NOTIFY do the work there. SQLite is the embedded mode, one process and one writer: it has
no row locks and no clock of its own worth trusting, so it takes the Python UTC clock and a
process-wide write lock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

NOTIFY_CHANNEL = "convection_outbox"
"""The PostgreSQL channel on which a commit with outbox rows wakes every relay."""

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "08000", "08003", "08006"})
# serialization failure, deadlock, lock not available, admin shutdown, connection errors


class Dialect:
    """The dialect-specific operations of one database engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.name = engine.dialect.name
        self.postgres = self.name == "postgresql"
        # SQLite has one writer; an in-process lock avoids SQLITE_BUSY on lock upgrades.
        self._writer = asyncio.Lock() if not self.postgres else None

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold the process-wide write lock around a transaction (SQLite only)."""
        if self._writer is None:
            yield
            return
        async with self._writer:
            yield

    async def now(self, conn: AsyncConnection) -> datetime:
        """Return the database clock's time (`clock_timestamp()`); Python's UTC on SQLite."""
        if not self.postgres:
            return datetime.now(UTC)
        value = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def for_update(self, stmt: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        """Lock the selected rows until commit; on SQLite the single writer is the lock."""
        if not self.postgres:
            return stmt
        return stmt.with_for_update(skip_locked=skip_locked)

    def insert_ignore(self, table: Table) -> Any:
        """Return an INSERT that silently skips rows whose primary key already exists."""
        if self.postgres:
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    async def notify(self, conn: AsyncConnection) -> None:
        """Wake the relays of other replicas when this transaction commits (PostgreSQL)."""
        if self.postgres:
            await conn.execute(select(text(f"pg_notify('{NOTIFY_CHANNEL}', '')")))

    async def lock_resources(self, conn: AsyncConnection, resources: Iterable[str]) -> None:
        """Serialise changes to these resources' lock queues until commit (sorted: no cycles).

        A queue spans several rows, and a row that does not exist yet cannot be locked, so
        an advisory lock per resource name stands for its queue.
        """
        if not self.postgres:
            return
        for resource in sorted(set(resources)):
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:r, 0))"), {"r": resource}
            )


def is_transient(exc: BaseException) -> bool:
    """Tell whether retrying the whole transaction may succeed (serialization, lost link)."""
    if isinstance(exc, ConcurrentUpdate):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code is None and orig is not None:
        code = getattr(orig.__cause__, "sqlstate", None)
    if code in _TRANSIENT_SQLSTATES:
        return True
    # SQLite: another process holds the write lock longer than busy_timeout.
    return "database is locked" in str(orig)


class ConcurrentUpdate(RuntimeError):
    """A saga row changed under us (its version moved): retry the transaction."""


def asyncpg_dsn(url: str) -> str:
    """Return a plain `postgresql://` DSN for asyncpg.connect from a SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)
