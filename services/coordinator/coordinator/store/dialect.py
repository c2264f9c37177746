"""Where PostgreSQL and SQLite differ, in one place.

The clock, row locks, upserts, wake-ups, and what their errors mean.

PostgreSQL is the production store: the database clock, `FOR UPDATE [SKIP LOCKED]`, and
NOTIFY (a commit with outbox rows wakes the relays of every replica) do the work there.
SQLite is the embedded mode, one process and one writer: it has no row locks and no clock of
its own worth trusting, so it takes the Python UTC clock and a process-wide write lock, and
its only wake-ups are the local ones the relay already gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Select, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convection.db import sqlstate, trouble
from coordinator.errors import Conflict, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "convection_outbox"
"""The PostgreSQL channel on which a commit with outbox rows wakes every relay."""

_QUEUES_LOCK = 0x636F6E766C6F636B  # "convlock": the resource lock queues' advisory lock


class Dialect:
    """The dialect-specific operations of one database engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
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

    async def lock_queue_table(self, conn: AsyncConnection) -> None:
        """Serialise changes to the resource lock queues until commit.

        A queue spans several rows, and a row that does not exist yet cannot be locked, so a
        transaction-scoped advisory lock stands for the whole table; SQLite's single writer
        serialises them already.
        """
        if self.postgres:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _QUEUES_LOCK})

    async def listen(self, wake: Callable[[], None], *, retry_every: float = 1.0) -> None:
        """Call `wake` on every commit with outbox rows, from any replica, until cancelled.

        PostgreSQL: a LISTEN connection of its own, reconnected when it drops. NOTIFY is a
        hint only (it is lost while disconnected); the relay polls as well. SQLite: nothing
        arrives from elsewhere, so this just waits to be cancelled.
        """
        if not self.postgres:
            await asyncio.Event().wait()
            return
        dsn = asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))

        def on_notify(*_args: Any) -> None:
            wake()

        while True:
            conn = None
            try:
                closed = asyncio.Event()
                conn = await asyncpg.connect(dsn, timeout=10)
                conn.add_termination_listener(lambda *_a, ev=closed: ev.set())
                await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbox LISTEN connection failed: %r; reconnecting", exc)
                await asyncio.sleep(retry_every)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))


def translate(exc: BaseException) -> StoreError | None:
    """Return the store error a driver error means, or None when it is not one of ours.

    Called at the edge (the store's transaction and read contexts), so nothing past the
    store ever sees a driver's exception type.
    """
    if isinstance(exc, StoreError):
        return exc
    kind = trouble(exc)
    if kind is None:
        return None
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    code = sqlstate(exc) if isinstance(exc, DBAPIError) else None
    if kind == "conflict":
        return Conflict(f"the transaction collided with another ({code}): {detail}")
    return StoreUnavailable(
        f"the database is unreachable ({code or type(detail).__name__}): {detail}"
    )


def asyncpg_dsn(url: str) -> str:
    """Return a plain `postgresql://` DSN for asyncpg.connect from a SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)
