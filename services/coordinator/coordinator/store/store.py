"""The coordinator's store: saga state, history, inbox, outbox and lock rows, on one connection.

Every method takes the `AsyncConnection` of a transaction the caller opened with
`Store.transaction()` (or of a read with `Store.reading()`), so the caller decides what
commits together: inbox, saga, history and outbox in one transaction. Both contexts map
driver errors into the coordinator's own (`StoreUnavailable`, `Conflict`) at this edge.
Rows map one-to-one onto the engine's models: `load(save(state)) == state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import SagaStatus
from coordinator.core import HistoryEntry, SagaState
from coordinator.errors import ConcurrentUpdate
from coordinator.store import queries
from coordinator.store import tables as t
from coordinator.store.dead_letters import DeadLetterQueries
from coordinator.store.dialect import Dialect, translate
from coordinator.store.hot import HotPath, Loaded, Started, Written
from coordinator.store.locks import LockQueries
from coordinator.store.outbox import OutboxMessage, OutboxQueries
from coordinator.store.parking import ParkingQueries
from coordinator.store.queries import SagaFilter, StepDue
from coordinator.store.rows import saga_row, state_from_rows, step_row


@dataclass(frozen=True)
class HistoryRow:
    """One stored audit-log line: its row id and saga, and the engine's entry."""

    id: int
    saga_id: str
    entry: HistoryEntry


class Store(OutboxQueries, LockQueries, ParkingQueries, DeadLetterQueries):
    """Reads and writes the coordinator's tables; one instance per database engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = Dialect(engine)
        self.hot = HotPath.for_engine(engine)
        """The fused statements of the message path (PostgreSQL), or None (SQLite)."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Open a transaction: commit on success, roll back on an exception."""
        try:
            async with self.dialect.writing(), self.engine.begin() as conn:
                yield conn
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """Open a connection for reads outside any write transaction."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc

    async def now(self, conn: AsyncConnection) -> datetime:
        """Return the database clock's time."""
        return await self.dialect.now(conn)

    async def fence_stalled(self, older_than: float) -> int:
        """End coordinator transactions stalled longer than `older_than` s (see `Dialect`)."""
        async with self.reading() as conn:
            ended = await self.dialect.fence_stalled(conn, older_than)
            await conn.commit()
        return ended

    # -- the message path: one read and one write per message (fused on PostgreSQL) ---------

    async def claim_start(self, conn: AsyncConnection, message_id: str, saga_id: str) -> Started:
        """Take the time, claim a StartSaga's message id, and tell whether the saga exists."""
        if self.hot is not None:
            return await self.hot.claim_start(conn, message_id, saga_id)
        at = await self.now(conn)
        return Started(at, await self.claim_inbox(conn, message_id, at), known=True)

    async def claim_and_lock(
        self,
        conn: AsyncConnection,
        message_id: str | None,
        saga_id: str,
        *,
        skip_locked: bool = False,
    ) -> Loaded:
        """Take the time, claim the message id (if any), lock and load the saga."""
        if self.hot is not None and not skip_locked:
            return await self.hot.claim_and_lock(conn, message_id, saga_id)
        at = await self.now(conn)
        if message_id is not None and not await self.claim_inbox(conn, message_id, at):
            return Loaded(at, False, None)
        found = await self.load_parked(conn, saga_id, lock=True, skip_locked=skip_locked)
        return Loaded(at, True, found)

    async def write_decision(
        self,
        conn: AsyncConnection,
        previous: SagaState | None,
        state: SagaState,
        history: Sequence[HistoryEntry],
        messages: Sequence[OutboxMessage],
        *,
        at: datetime,
        available_at: datetime,
        claim: str | None = None,
    ) -> Written | None:
        """Write a saga (new when `previous` is None), its history and outbox rows.

        Returns None, having written nothing, when a new saga's id is taken. The hot path
        returns the outbox rows it wrote, due at `available_at`, for the relay to be handed;
        the generic one counts them in `queued`, due at once, for the relay to poll.
        `claim` (the hot path only): claim this message id in the same statement, outside any
        transaction (`HotPath.write`).
        """
        if self.hot is not None:
            return await self.hot.write(
                conn,
                previous,
                state,
                history,
                messages,
                at=at,
                available_at=available_at,
                claim=claim,
            )
        if claim is not None:
            raise ValueError("claiming with the write needs the PostgreSQL hot path")
        if previous is None:
            if not await self.insert_saga(conn, state):
                return None
        else:
            await self.update_saga(conn, previous, state)
        await self.append_history(conn, state.saga_id, history)
        return Written((), queued=await self.add_outbox(conn, messages, at))

    # -- inbox --------------------------------------------------------------------------------

    async def claim_inbox(self, conn: AsyncConnection, message_id: str, at: datetime) -> bool:
        """Record `message_id` as processed; False when it already was (a duplicate)."""
        stmt = self.dialect.insert_ignore(t.inbox).values(message_id=message_id, received_at=at)
        result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def purge_inbox(self, conn: AsyncConnection, before: datetime, limit: int) -> int:
        """Forget at most `limit` message ids received before `before` (small batches).

        Replies stay deduplicated after that by the saga's own step records (a stale reply
        is ignored by the engine); the retention must outlast any redelivery.
        """
        ids = select(t.inbox.c.message_id).where(t.inbox.c.received_at < before).limit(limit)
        stmt = delete(t.inbox).where(t.inbox.c.message_id.in_(ids.scalar_subquery()))
        result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    # -- sagas --------------------------------------------------------------------------------

    async def load(
        self, conn: AsyncConnection, saga_id: str, *, lock: bool = False, skip_locked: bool = False
    ) -> SagaState | None:
        """Return the saga, locking its row if asked; None if absent (or locked and skipped)."""
        found = await self.load_parked(conn, saga_id, lock=lock, skip_locked=skip_locked)
        return found[0] if found is not None else None

    async def load_parked(
        self, conn: AsyncConnection, saga_id: str, *, lock: bool = False, skip_locked: bool = False
    ) -> tuple[SagaState, str | None] | None:
        """Return the saga and why its events are parked (None when they are not)."""
        stmt = select(t.sagas).where(t.sagas.c.id == saga_id)
        if lock:
            stmt = self.dialect.for_update(stmt, skip_locked=skip_locked)
        row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        steps = (
            await conn.execute(
                select(t.saga_steps)
                .where(t.saga_steps.c.saga_id == saga_id)
                .order_by(t.saga_steps.c.ordinal)
            )
        ).mappings()
        return state_from_rows(row, list(steps)), row["parked"]

    async def exists(self, conn: AsyncConnection, saga_id: str) -> bool:
        """Tell whether a saga with this id exists."""
        row = await conn.execute(select(t.sagas.c.id).where(t.sagas.c.id == saga_id))
        return row.first() is not None

    async def insert_saga(self, conn: AsyncConnection, state: SagaState) -> bool:
        """Insert a new saga and its steps; False if a saga with that id already exists."""
        result = await conn.execute(
            self.dialect.insert_ignore(t.sagas).values(**saga_row(state), deadline_fired=False)
        )
        if not result.rowcount:
            return False
        if state.steps:
            await conn.execute(
                insert(t.saga_steps),
                [step_row(state.saga_id, i, s) for i, s in enumerate(state.steps)],
            )
        return True

    async def update_saga(self, conn: AsyncConnection, old: SagaState, new: SagaState) -> None:
        """Write `new` over `old`: the saga row (checked by version) and the changed steps."""
        result = await conn.execute(
            update(t.sagas)
            .where(t.sagas.c.id == old.saga_id, t.sagas.c.version == old.version)
            .values(**saga_row(new))
        )
        if not result.rowcount:
            raise ConcurrentUpdate(f"saga {old.saga_id} is no longer at version {old.version}")
        before = {s.name: s for s in old.steps}
        rows = [
            {**step_row(new.saga_id, ordinal, step), "k_saga": new.saga_id, "k_name": step.name}
            for ordinal, step in enumerate(new.steps)
            if before.get(step.name) != step
        ]
        if rows:
            # One executemany for every changed step: the SET list comes from the row keys.
            c = t.saga_steps.c
            stmt = update(t.saga_steps).where(
                c.saga_id == bindparam("k_saga"), c.name == bindparam("k_name")
            )
            await conn.execute(stmt, rows)

    async def mark_deadline_fired(self, conn: AsyncConnection, saga_id: str) -> None:
        """Remember that the timers fed this saga's deadline, so they never feed it again."""
        await conn.execute(
            update(t.sagas).where(t.sagas.c.id == saga_id).values(deadline_fired=True)
        )

    async def list_sagas(
        self, conn: AsyncConnection, f: SagaFilter, now: datetime
    ) -> list[dict[str, Any]]:
        """Return saga summaries, newest first (see `queries.list_sagas`)."""
        return await queries.list_sagas(conn, f, now)

    async def count_by_status(self, conn: AsyncConnection) -> dict[SagaStatus, int]:
        """Return how many sagas are in each status."""
        return await queries.count_by_status(conn)

    # -- history ------------------------------------------------------------------------------

    async def append_history(
        self, conn: AsyncConnection, saga_id: str, entries: Sequence[HistoryEntry]
    ) -> None:
        """Append audit-log entries of one saga."""
        if not entries:
            return
        rows = [{"saga_id": saga_id, **e.model_dump(mode="python")} for e in entries]
        await conn.execute(insert(t.saga_history), rows)

    async def history(self, conn: AsyncConnection, saga_id: str) -> list[HistoryRow]:
        """Return the audit log of one saga, oldest first."""
        rows = await conn.execute(
            select(t.saga_history)
            .where(t.saga_history.c.saga_id == saga_id)
            .order_by(t.saga_history.c.id)
        )
        out = []
        for r in rows.mappings():
            data = {k: r[k] for k in HistoryEntry.model_fields}
            out.append(HistoryRow(r["id"], r["saga_id"], HistoryEntry.model_validate(data)))
        return out

    # -- timers -------------------------------------------------------------------------------

    async def due_steps(self, conn: AsyncConnection, at: datetime, limit: int) -> list[StepDue]:
        """Return steps whose deadline passed or whose retry is due, in live sagas."""
        return await queries.due_steps(conn, at, limit)

    async def due_sagas(self, conn: AsyncConnection, at: datetime, limit: int) -> list[str]:
        """Return ids of live sagas whose own deadline passed and was not yet fed."""
        return await queries.due_sagas(conn, at, limit)
