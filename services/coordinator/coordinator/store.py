"""The coordinator's store: saga state, history, inbox, outbox and lock rows, on one connection.

Every method takes the `AsyncConnection` of a transaction the caller opened with
`Store.transaction()`, so the caller decides what commits together (DESIGN.md: inbox,
saga, history and outbox in one transaction). Rows map one-to-one onto the engine's
models: `load(save(state)) == state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import TERMINAL_STATUSES, SagaStatus
from coordinator import tables as t
from coordinator.dialect import ConcurrentUpdate, Dialect
from coordinator.locks import Claimant, LockQueue
from coordinator.model import HistoryEntry, SagaState
from coordinator.states import CompStatus, StepStatus
from coordinator.store_outbox import OutboxMessage, OutboxQueries, OutboxRow
from coordinator.store_rows import saga_row, state_from_rows, step_row

__all__ = ["HistoryRow", "OutboxMessage", "OutboxRow", "StepDue", "Store"]

_TERMINAL = [s.value for s in TERMINAL_STATUSES]


@dataclass(frozen=True)
class HistoryRow:
    """One stored audit-log line: its row id and saga, and the engine's entry."""

    id: int
    saga_id: str
    entry: HistoryEntry


class Store(OutboxQueries):
    """Reads and writes the coordinator's tables; one instance per database engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = Dialect(engine)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Open a transaction: commit on success, roll back on an exception."""
        async with self.dialect.writing(), self.engine.begin() as conn:
            yield conn

    async def now(self, conn: AsyncConnection) -> datetime:
        """Return the database clock's time."""
        return await self.dialect.now(conn)

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
        stmt = select(t.sagas).where(t.sagas.c.id == saga_id)
        if lock:
            stmt = self.dialect.for_update(stmt, skip_locked=skip_locked)
        row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        steps = (
            (
                await conn.execute(
                    select(t.saga_steps)
                    .where(t.saga_steps.c.saga_id == saga_id)
                    .order_by(t.saga_steps.c.ordinal)
                )
            )
            .mappings()
            .all()
        )
        return state_from_rows(row, steps)

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
        self,
        conn: AsyncConnection,
        *,
        status: str | None = None,
        saga_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return summary rows of sagas, newest first, filtered by status and type."""
        cols = t.sagas.c
        stmt = select(
            cols.id, cols.type, cols.status, cols.trace_id, cols.created_at, cols.updated_at
        )
        if status is not None:
            stmt = stmt.where(cols.status == status)
        if saga_type is not None:
            stmt = stmt.where(cols.type == saga_type)
        stmt = stmt.order_by(cols.created_at.desc(), cols.id).limit(limit).offset(offset)
        return [dict(r) for r in (await conn.execute(stmt)).mappings()]

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

    # -- resource locks -----------------------------------------------------------------------

    async def load_locks(
        self, conn: AsyncConnection, *, resources: Iterable[str] = (), saga_id: str | None = None
    ) -> dict[str, LockQueue]:
        """Return the queues of `resources` (and of `saga_id`), closed over their waiters."""
        c = t.resource_locks.c
        wanted = set(resources)
        sagas: set[str] = {saga_id} if saga_id else set()
        rows: dict[tuple[str, str], Any] = {}
        while True:
            cond = [c.resource.in_(wanted)] if wanted else []
            if sagas:
                cond.append(c.saga_id.in_(sagas))
            if not cond:
                break
            found = (await conn.execute(select(t.resource_locks).where(or_(*cond)))).mappings()
            for r in found:
                rows[(r["resource"], r["saga_id"])] = r
            more_res = {r for r, _ in rows} - wanted
            more_sagas = {s for _, s in rows} - sagas
            if not more_res and not more_sagas:
                break
            wanted |= more_res
            sagas |= more_sagas
        table = {r: LockQueue(r) for r in wanted}
        for (resource, _), r in sorted(rows.items(), key=lambda kv: kv[1]["position"]):
            q = table[resource]
            who = Claimant(r["saga_id"], r["saga_type"])
            if r["granted"]:
                table[resource] = LockQueue(resource, who, q.waiters)
            else:
                table[resource] = LockQueue(resource, q.holder, (*q.waiters, who))
        return table

    async def save_locks(self, conn: AsyncConnection, table: dict[str, LockQueue]) -> None:
        """Replace the rows of every queue in `table` with what the table says."""
        if not table:
            return
        await conn.execute(delete(t.resource_locks).where(t.resource_locks.c.resource.in_(table)))
        rows = []
        for resource, q in table.items():
            if q.holder is not None:
                rows.append(_lock_row(resource, q.holder, granted=True, position=0))
            rows.extend(
                _lock_row(resource, w, granted=False, position=i + 1)
                for i, w in enumerate(q.waiters)
            )
        if rows:
            await conn.execute(insert(t.resource_locks), rows)

    # -- timers -------------------------------------------------------------------------------

    async def due_steps(self, conn: AsyncConnection, at: datetime, limit: int) -> list[StepDue]:
        """Return steps whose deadline passed or whose retry is due, in live sagas."""
        st, s = t.saga_steps.c, t.sagas.c
        running = or_(st.status == StepStatus.RUNNING, st.comp_status == CompStatus.RUNNING)
        waiting = or_(st.status == StepStatus.RETRY_WAIT, st.comp_status == CompStatus.RETRY_WAIT)
        stmt = (
            select(st.saga_id, st.name, st.status, st.comp_status, st.attempt, st.comp_attempt)
            .join(t.sagas, s.id == st.saga_id)
            .where(
                s.status.not_in(_TERMINAL),
                or_(and_(running, st.deadline <= at), and_(waiting, st.due_at <= at)),
            )
            .limit(limit)
        )
        return [StepDue(**r) for r in (await conn.execute(stmt)).mappings()]

    async def due_sagas(self, conn: AsyncConnection, at: datetime, limit: int) -> list[str]:
        """Return ids of live sagas whose own deadline passed and was not yet fed."""
        s = t.sagas.c
        stmt = (
            select(s.id)
            .where(s.status.not_in(_TERMINAL), s.deadline <= at, s.deadline_fired.is_(False))
            .limit(limit)
        )
        return list((await conn.execute(stmt)).scalars())

    async def count_by_status(self, conn: AsyncConnection) -> dict[SagaStatus, int]:
        """Return how many sagas are in each status."""
        c = t.sagas.c
        rows = await conn.execute(select(c.status, func.count()).group_by(c.status))
        return {SagaStatus(status): int(n) for status, n in rows}


@dataclass(frozen=True)
class StepDue:
    """A step row the timers found due."""

    saga_id: str
    name: str
    status: str
    comp_status: str
    attempt: int
    comp_attempt: int


def _lock_row(resource: str, who: Claimant, *, granted: bool, position: int) -> dict[str, Any]:
    return {
        "resource": resource,
        "saga_id": who.saga_id,
        "saga_type": who.saga_type,
        "granted": granted,
        "position": position,
    }
