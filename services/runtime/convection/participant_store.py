"""The participant's memory of final replies, by idempotency key, and the per-key lock.

A final outcome (succeeded or failed) is stored before its reply is published, so a redelivered
or retried command is answered from here without running its handler again. Work on one key is
serialised: in-process by an asyncio lock, and across processes on PostgreSQL by the key's
advisory lock, held by the claim's connection while the handler runs (a crashed process's
connection dies and releases it). SQLite is the single-process embedded mode, so the in-process
lock is enough there. A compensation takes the lock of the key it undoes, so a forward command
and its compensation never run at once.

On PostgreSQL a command costs two round trips, and no transaction stays open while its
handler runs:

    claim    lock the key (a session lock), then read what is stored for it     one function
    settle   insert the outcome, COMMIT, then unlock                           one procedure

The claim's read runs after the lock is granted and, under READ COMMITTED (the claim refuses
any other isolation level), takes its own snapshot (a VOLATILE function's statements each
do), so it sees an outcome a previous holder committed. The
settle commits before it unlocks, so the next holder's read finds the outcome. A claim that
stores nothing (a duplicate, a retryable answer) unlocks with a third statement; one that
fails midway drops its connection, which releases the lock. The lock belongs to the database
session: behind PgBouncer, participants need session pooling (an unlock that finds the lock
not held fails loudly and says so).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    and_,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import utc_now
from contracts.base import JsonObject
from convection import participant_sql as sql
from convection import pg_driver
from convection.tracing import db_span

METADATA = MetaData()
"""The participant's tables (created at start with `create_all`)."""

REPLIES = Table(
    "convection_participant_replies",
    METADATA,
    Column("service", String(64), primary_key=True),
    Column("idempotency_key", String(300), primary_key=True),
    Column("undoes_key", String(300), nullable=True, index=True),
    Column("outcome", String(16), nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("saga_id", String(128), nullable=False),
    Column("step", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
"""Final outcomes by (service, idempotency key); `undoes_key` marks a compensation."""


async def create_tables(engine: AsyncEngine, metadata: MetaData, *, attempts: int = 3) -> None:
    """Create `metadata`'s missing tables; safe when several processes start at once.

    Two processes creating one PostgreSQL table at the same moment make one of them fail
    (a unique violation in the catalog); the next attempt then finds the table and skips it.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
        except DBAPIError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
        else:
            return


@dataclass(frozen=True)
class StoredReply:
    """A final outcome as stored: `succeeded` with a result, or `failed` with an error."""

    outcome: str
    result: JsonObject | None
    error: dict[str, Any] | None


def _lock_id(service: str, key: str) -> int:
    # PostgreSQL advisory locks take a signed 64-bit key; a collision only serialises two keys.
    digest = hashlib.blake2b(f"{service}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Recall:
    """What a slot holds for a command: its stored outcome, a tombstone, the forward result."""

    stored: StoredReply | None
    """The final outcome stored for the command's own key, if any."""
    compensated: bool
    """A compensation of the command's key has succeeded (only asked for forward commands)."""
    forward: StoredReply | None
    """For a compensation: the stored outcome of the forward step it undoes, if any."""


_TABLE = REPLIES.name


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class Slot:
    """Exclusive access to one key's records, for the duration of `ReplyStore.claim`."""

    def __init__(
        self,
        service: str,
        connection: AsyncConnection | None,
        engine: AsyncEngine,
        lock_id: int = 0,
    ) -> None:
        self._service = service
        self._connection = connection
        self._engine = engine
        self._lock_id = lock_id
        self.locked = False
        """PostgreSQL: the key's advisory lock may be held by this slot's connection."""

    @property
    def lock_id(self) -> int:
        """The advisory lock's key (PostgreSQL)."""
        return self._lock_id

    async def recall(
        self, key: str, *, undoes_key: str | None = None, tombstone: bool = True
    ) -> Recall:
        """Return what is stored for `key`, and for the `undoes_key` a compensation undoes.

        `tombstone` asks whether `key` was compensated (for a forward command). On PostgreSQL
        this first takes the claim's advisory lock, in the same statement.
        """
        if self._connection is None:
            stored = await self.lookup(key)
            forward = await self.lookup(undoes_key) if undoes_key is not None else None
            tomb = tombstone and stored is None and await self.compensated(key)
            return Recall(stored, tomb, forward)
        # '' matches no row's undoes_key: no tombstone asked.
        params = (self._service, key, undoes_key or key, key if tombstone else "", self._lock_id)
        if self.locked:
            # The lock is re-entrant: a second claim would need a second unlock.
            raise RuntimeError("Slot.recall: called twice in one claim")
        # Set first: should the call fail midway, the lock may be held all the same.
        self.locked = True
        with db_span("SELECT", _TABLE):
            rows = await pg_driver.fetch_alone(self._connection, sql.CLAIM_SQL, params)
        found: dict[str, StoredReply] = {}
        tomb = False
        for name, outcome, result, error, is_tomb in rows:
            if is_tomb:
                tomb = True
            else:
                found[name] = StoredReply(
                    outcome,
                    None if result is None else json.loads(result),
                    None if error is None else json.loads(error),
                )
        forward = found.get(undoes_key) if undoes_key is not None else None
        return Recall(found.get(key), tomb and key not in found, forward)

    async def lookup(self, key: str) -> StoredReply | None:
        """Return the final outcome stored for `key`, if any."""
        query = select(REPLIES.c.outcome, REPLIES.c.result, REPLIES.c.error).where(
            and_(REPLIES.c.service == self._service, REPLIES.c.idempotency_key == key)
        )
        row = (await self._execute(query, "SELECT")).first()
        return None if row is None else StoredReply(row.outcome, row.result, row.error)

    async def compensated(self, forward_key: str) -> bool:
        """Tell whether a compensation of `forward_key` has succeeded (a tombstone)."""
        query = select(REPLIES.c.idempotency_key).where(
            and_(
                REPLIES.c.service == self._service,
                REPLIES.c.undoes_key == forward_key,
                REPLIES.c.outcome == "succeeded",
            )
        )
        return (await self._execute(query, "SELECT")).first() is not None

    async def save(
        self,
        key: str,
        reply: StoredReply,
        *,
        undoes_key: str | None,
        saga_id: str,
        step: str,
    ) -> None:
        """Store the final outcome of `key`: committed when this returns; on PostgreSQL, unlock.

        Call it last in a claim.
        """
        if self._connection is not None:
            if not self.locked:
                raise RuntimeError("Slot.save: recall first, which takes the key's lock")
            # The advisory lock guarantees nobody else stored this key meanwhile.
            params = (
                self._service,
                key,
                undoes_key,
                reply.outcome,
                _json(reply.result),
                _json(reply.error),
                saga_id,
                step,
                utc_now(),
                self._lock_id,
            )
            with db_span("INSERT", _TABLE):
                await pg_driver.fetch_alone(self._connection, sql.SETTLE_SQL, params)
            self.locked = False
            return
        statement = insert(REPLIES).values(
            service=self._service,
            idempotency_key=key,
            undoes_key=undoes_key,
            outcome=reply.outcome,
            result=reply.result,
            error=reply.error,
            saga_id=saga_id,
            step=step,
            created=utc_now(),
        )
        try:
            with db_span("INSERT", _TABLE, self._engine.dialect.name):
                async with self._engine.begin() as connection:
                    await connection.execute(statement)
        except IntegrityError:
            # Another participant sharing this SQLite file stored it first; its answer stands.
            pass

    async def _execute(self, query: Any, operation: str) -> Any:
        if self._connection is not None:
            # It would open a transaction on the claim's connection, which runs without one.
            raise RuntimeError("on PostgreSQL a slot reads through recall, which takes the lock")
        # A CLIENT span per database call, under the adapter's consumer span.
        with db_span(operation, _TABLE, self._engine.dialect.name):
            async with self._engine.connect() as connection:
                return await connection.execute(query)


class ReplyStore:
    """Stored final replies of one service, and exclusive claims on idempotency keys.

    Args:
        engine: The participant's database (PostgreSQL or SQLite).
        service: The service whose replies these are.
    """

    def __init__(self, engine: AsyncEngine, service: str) -> None:
        self._engine = engine
        self._service = service
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}
        self._postgres = engine.dialect.name == "postgresql"
        # A claim holds a pooled connection while its handler runs; claiming at most the pool's
        # base size leaves the overflow for the handlers' own queries, so they cannot starve.
        size = getattr(engine.pool, "size", None)
        self._connections = asyncio.Semaphore(max(1, size() if callable(size) else 5))

    async def create_tables(self) -> None:
        """Create the participant's tables if they are missing (and on PostgreSQL its routines)."""
        await create_tables(self._engine, METADATA)
        if not self._postgres:
            return
        async with self._engine.begin() as connection:
            # Created once (a new body gets a new name): replacing a routine takes its owner,
            # and recompiles it in every session. Two processes creating it at once would fail
            # in the catalog, hence the lock.
            await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({sql.ROUTINES_LOCK})")
            if (await connection.exec_driver_sql(sql.ROUTINES_SQL)).scalar_one() < 2:
                await connection.exec_driver_sql(sql.CLAIM_DDL)
                await connection.exec_driver_sql(sql.SETTLE_DDL)

    @asynccontextmanager
    async def claim(self, lock_key: str) -> AsyncIterator[Slot]:
        """Hold `lock_key` exclusively; what the slot saves is committed by `Slot.save`."""
        lock = self._locks.setdefault(lock_key, asyncio.Lock())
        self._waiters[lock_key] = self._waiters.get(lock_key, 0) + 1
        try:
            async with lock:
                if not self._postgres:
                    yield Slot(self._service, None, self._engine)
                    return
                async with self._connections, self._engine.connect() as connection:
                    slot = Slot(
                        self._service, connection, self._engine, _lock_id(self._service, lock_key)
                    )
                    try:
                        yield slot
                        if slot.locked:
                            # Nothing stored (a duplicate, a retryable answer): unlock.
                            [row] = await pg_driver.fetch_alone(
                                connection, sql.UNLOCK_SQL, (slot.lock_id,)
                            )
                            if not row["held"]:
                                raise RuntimeError(sql.NOT_HELD)
                            slot.locked = False
                    finally:
                        if slot.locked:
                            # The lock's state is unknown (a failure, a cancellation): a
                            # connection that is gone holds nothing, so drop this one.
                            await connection.invalidate()
        finally:
            self._waiters[lock_key] -= 1
            if not self._waiters[lock_key]:
                # Forget idle locks, so the map does not grow with every key ever seen.
                del self._waiters[lock_key]
                del self._locks[lock_key]
