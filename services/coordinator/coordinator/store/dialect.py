"""Where PostgreSQL and SQLite differ, in one place.

The clock, row locks, upserts, wake-ups, JSON list containment, the one-replica lease, and
what their errors mean.

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
from sqlalchemy import Select, Table, exists, func, select, text, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convection.db import sqlstate, trouble
from coordinator.errors import Conflict, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "convection_outbox"
"""The PostgreSQL channel on which a commit with outbox rows wakes every relay."""

COORDINATOR_APPLICATION = "convection-coordinator"
"""The application_name of the coordinator's pooled connections (`pg_stat_activity`)."""

# Sessions of coordinators that stopped talking inside a transaction: waiting for their client
# (ClientRead) since longer than the bound, idle in a transaction or halfway through the
# extended protocol (after Parse, before Bind: "active", which no server timeout covers).
_STALLED = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = :app"
    " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND wait_event = 'ClientRead'"
    " AND state_change < clock_timestamp() - make_interval(secs => :secs)"
)

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

    async def fence_stalled(self, conn: AsyncConnection, older_than: float) -> int:
        """End the transactions of coordinator sessions stalled longer than `older_than` s.

        A replica frozen (SIGSTOP, a paused VM) in the middle of a transaction keeps its row
        locks, so the replica that got its redelivered messages would wait on them forever.
        Ending a transaction never loses anything: it rolls back, and its message comes back.
        Returns how many sessions were ended (always 0 on SQLite: one process, one writer).
        """
        if not self.postgres:
            return 0
        ended = (
            await conn.execute(_STALLED, {"app": COORDINATOR_APPLICATION, "secs": older_than})
        ).scalar_one()
        return int(ended or 0)

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


def json_list_contains(dialect: str, column: Any, value: str) -> Any:
    """Return a condition: the JSON list in `column` has `value` as one of its items.

    PostgreSQL: jsonb containment (`@>`); SQLite: a match among the items of `json_each`.
    """
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains([value])
    items = func.json_each(column).table_valued("value")
    return exists(select(1).select_from(items).where(items.c.value == value))


_LEASE_KEY = (0x636F6E76, 1)
"""The advisory lock of the gauge lease: two int4 keys, a space apart from the bigint keys
of `lock_resources`."""


LEASE_APPLICATION = "convection-gauge-lease"
"""The application_name of a lease's connection, as `pg_stat_activity` shows it."""


class Lease:
    """One replica's claim to a singleton duty (exporting the whole database's gauges).

    PostgreSQL: a session advisory lock held on a connection of its own; `held()` checks the
    connection is alive and takes the lock again when it was lost (the connection dropped, the
    backend was terminated), so some live replica always ends up holding it. SQLite: one
    process per database file, so it always holds it.
    """

    def __init__(self, engine: AsyncEngine, *, key: tuple[int, int] = _LEASE_KEY) -> None:
        self._postgres = engine.dialect.name == "postgresql"
        url = engine.url.render_as_string(hide_password=False)
        self._dsn = asyncpg_dsn(url) if self._postgres else ""
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self._held = False
        self._lock = asyncio.Lock()

    async def held(self) -> bool:
        """Tell whether this replica holds the lease now, trying to take it if not."""
        if not self._postgres:
            return True
        async with self._lock:
            try:
                return await self._check()
            except Exception as exc:
                # Whatever broke (a terminated backend shows as several driver errors), the
                # connection is given up; the next scrape connects afresh.
                logger.warning("gauge lease: %r; trying again on the next scrape", exc)
                await self._drop()
                return False

    async def _check(self) -> bool:
        if self._conn is not None and self._conn.is_closed():
            await self._drop()
        if self._conn is None:
            self._conn = await asyncpg.connect(
                self._dsn, timeout=5, server_settings={"application_name": LEASE_APPLICATION}
            )
        if self._held:
            # A query on the dedicated connection proves the session (and its lock) lives.
            await self._conn.fetchval("SELECT 1", timeout=5)
            return True
        self._held = bool(
            await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self._key, timeout=5)
        )
        return self._held

    async def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.shield(conn.close(timeout=2))
        except Exception:
            # A dead session cannot say goodbye; drop its socket without one.
            conn.terminate()

    async def close(self) -> None:
        """Give the lease up (closing the connection releases the lock)."""
        async with self._lock:
            await self._drop()


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
