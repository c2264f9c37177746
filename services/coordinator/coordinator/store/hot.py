"""The hot path on PostgreSQL: each message read in one statement and written in one.

The generic store issues a statement per table (clock, inbox, saga, steps; then saga, steps,
history, outbox, NOTIFY), each compiled by SQLAlchemy. Here the same rows are read and written
by two plain SQL strings, built once from the table definitions and run with
`convection.pg_driver` on the asyncpg connection itself (no compilation, no cache keys, no
result metadata per call; each prepared once per connection):

    read   clock + inbox claim + saga row FOR UPDATE + its steps        one round trip
    write  saga row (checked by version) + changed steps + history + outbox rows, one more

(besides BEGIN and COMMIT). A message processed alone can take the optimistic path instead,
two round trips and no transaction around them (`coordinator.transactions`):

    peek   clock + is the message id new + saga row + its steps, no lock   one round trip
    write  as above, and the inbox claim: the statement is the transaction   one more

The optimistic write updates the saga row only if it is still at the version peeked, not
parked, and the message id is still unclaimed, and claims the id only if it wrote the row; when
it writes nothing, the caller runs the message again on the locking path, which sorts out why.
The claim has no ON CONFLICT: an id a locking transaction claimed after the write's snapshot
(which moves no version) fails the whole statement, so the row is never written unclaimed. Two
copies of one message racing this way on two replicas can deadlock (the optimistic write holds
the saga row and waits for the claim; the locking one holds the claim and waits for the row):
PostgreSQL breaks it after `deadlock_timeout` (1 s by default), and either side retries.

The read takes the row lock and reads the steps in one statement, so the steps come from the
statement's snapshot, which is older than the lock when the lock had to wait: the statement
also reads the saga's version from that snapshot, and when it differs from the locked row's
the steps are read again (a second statement, only under contention). Steps are only ever
written with the saga row's version bumped, so equal versions mean current steps.

SQLite (the embedded mode) keeps the generic store; `HotPath.for_engine` says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convection import pg_driver
from coordinator.core import HistoryEntry, SagaState
from coordinator.errors import ConcurrentUpdate
from coordinator.store import tables as t
from coordinator.store.hot_sql import (
    HISTORY_COLUMNS,
    JSON_COLUMNS,
    OUTBOX_COLUMNS,
    PEEK_SQL,
    PEEK_START_SQL,
    SAGA_ALIASES,
    START_SQL,
    STEP_ALIASES,
    STEP_COLUMNS,
    STEP_SET,
    arrays,
    param,
    read_sql,
    write_sql,
)
from coordinator.store.outbox import OutboxMessage, OutboxRow, outbox_row
from coordinator.store.rows import saga_row, state_from_rows, step_row


@dataclass(frozen=True)
class Loaded:
    """What the read statement found: the database time, and the locked saga if any."""

    at: datetime
    fresh: bool
    """False: the message id was in the inbox already (a duplicate); nothing was locked."""
    found: tuple[SagaState, str | None] | None
    """The saga and its parked mark, or None when there is no such saga."""


@dataclass(frozen=True)
class Started:
    """What the read statement of a start found: the time, a duplicate id, a known saga."""

    at: datetime
    fresh: bool
    known: bool


HANDOFF_LEASE = timedelta(seconds=10)
"""How long the polling relays leave alone a row that its writer's relay was handed to
publish at once: long enough for a slow confirm, short enough that a crash is soon healed."""


@dataclass(frozen=True)
class Written:
    """The outbox rows a write inserted (ids in the order given), for the relay."""

    outbox: tuple[tuple[int, OutboxMessage], ...]
    queued: int = 0
    """Rows written due at once, for the polling relay (the generic store's)."""

    def rows(self, at: datetime) -> list[OutboxRow]:
        """Return the inserted rows as the relay publishes them (no read back needed)."""
        return [
            OutboxRow(
                id=row_id,
                exchange=m.exchange,
                routing_key=m.routing_key,
                message_id=m.message_id,
                body=m.body,
                headers=dict(m.headers),
                mandatory=m.mandatory,
                attempts=0,
                created_at=at,
                span=m.span,
            )
            for row_id, m in self.outbox
        ]


class HotPath:
    """The fused statements of the message path, on one PostgreSQL engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> HotPath | None:
        """Return the hot path of a PostgreSQL engine; None for SQLite (the generic store)."""
        return cls(engine) if engine.dialect.name == "postgresql" else None

    async def claim_and_lock(
        self, conn: AsyncConnection, message_id: str | None, saga_id: str
    ) -> Loaded:
        """Take the time, claim the message id, lock the saga and read its steps."""
        rows = await pg_driver.fetch(conn, read_sql(message_id is not None), (message_id, saga_id))
        head = rows[0]
        at = head["clock_at"]
        if not head["fresh"]:
            return Loaded(at, False, None)
        if head["s_id"] is None:
            return Loaded(at, True, None)
        saga, steps = _saga_and_steps(rows)
        if head["seen_version"] != saga["version"]:
            # The lock waited for a writer: the steps read with it are from before its commit.
            found = await conn.execute(
                select(t.saga_steps)
                .where(t.saga_steps.c.saga_id == saga_id)
                .order_by(t.saga_steps.c.ordinal)
            )
            steps = list(found.mappings())
        return Loaded(at, True, (state_from_rows(saga, steps), saga["parked"]))

    async def peek(self, conn: AsyncConnection, message_id: str, saga_id: str) -> Loaded:
        """Take the time, tell whether the message id is new, read the saga: no lock, no claim.

        `conn` must have no transaction open: the statement runs in one of its own.
        """
        rows = await pg_driver.fetch_alone(conn, PEEK_SQL, (message_id, saga_id))
        head = rows[0]
        at = head["clock_at"]
        if not head["fresh"]:
            return Loaded(at, False, None)
        if head["s_id"] is None:
            return Loaded(at, True, None)
        saga, steps = _saga_and_steps(rows)
        return Loaded(at, True, (state_from_rows(saga, steps), saga["parked"]))

    async def peek_start(self, conn: AsyncConnection, message_id: str, saga_id: str) -> Started:
        """Take the time, tell whether a StartSaga's id is new and its saga exists: no claim."""
        [row] = await pg_driver.fetch_alone(conn, PEEK_START_SQL, (message_id, saga_id))
        return Started(row["clock_at"], bool(row["fresh"]), bool(row["known"]))

    async def claim_start(self, conn: AsyncConnection, message_id: str, saga_id: str) -> Started:
        """Take the time, claim the StartSaga's id, and tell whether the saga exists."""
        [row] = await pg_driver.fetch(conn, START_SQL, (message_id, saga_id))
        return Started(row["clock_at"], bool(row["fresh"]), bool(row["known"]))

    async def write(
        self,
        conn: AsyncConnection,
        previous: SagaState | None,
        state: SagaState,
        history: Sequence[HistoryEntry],
        messages: Iterable[OutboxMessage],
        *,
        at: datetime,
        available_at: datetime,
        claim: str | None = None,
    ) -> Written | None:
        """Write a decision in one statement: saga row, changed steps, history, outbox rows.

        The saga row is inserted when `previous` is None, else updated if still at its
        version. Returns None when a new saga's id is taken (nothing written); raises
        ConcurrentUpdate when an existing saga moved on meanwhile. `claim`: the message id
        to claim in the same statement, run in a transaction of its own (`conn` has none
        open); an id claimed already writes nothing, as a taken id or a moved saga does, a
        parked saga is not updated, and an id claimed after the statement's snapshot raises
        ConcurrentUpdate with nothing written.
        """
        out = list(messages)
        row = saga_row(state)
        if previous is None:
            row["deadline_fired"] = False
            steps = [step_row(state.saga_id, i, s) for i, s in enumerate(state.steps)]
        else:
            before = {s.name: s for s in previous.steps}
            steps = [
                step_row(state.saga_id, i, s)
                for i, s in enumerate(state.steps)
                if before.get(s.name) != s
            ]
        saga_cols = _changed(row, previous)
        sql = write_sql(
            previous is None, saga_cols, bool(steps), bool(history), bool(out), claim is not None
        )
        # In the order `write_sql` numbered them.
        jsons = JSON_COLUMNS["sagas"]
        values: list[Any] = [state.saga_id]
        if claim is not None:
            values.append(claim)
        if previous is not None:
            values.append(previous.version)
        values.extend(param(row[c], c in jsons) for c in saga_cols)
        if steps:
            values.extend(
                arrays(t.saga_steps, STEP_COLUMNS if previous is None else STEP_SET, steps)
            )
        if history:
            entries = [{"saga_id": state.saga_id, **e.model_dump(mode="python")} for e in history]
            values.extend(arrays(t.saga_history, HISTORY_COLUMNS, entries))
        if out:
            rows = [outbox_row(m, at, available_at) for m in out]
            values.extend(arrays(t.outbox, OUTBOX_COLUMNS, rows))
        if claim is None:
            [result] = await pg_driver.fetch(conn, sql, values)
        else:
            try:
                [result] = await pg_driver.fetch_alone(conn, sql, values)
            except asyncpg.UniqueViolationError as exc:
                if exc.table_name != t.inbox.name:
                    raise
                # Claimed by a locking transaction after this statement's snapshot (a claim
                # before it writes nothing without an error); nothing was written.
                raise ConcurrentUpdate(f"{claim} was claimed meanwhile") from exc
        if not result["written"]:
            if previous is None:
                return None
            moved = f"saga {previous.saga_id} is no longer at version {previous.version}"
            raise ConcurrentUpdate(moved if claim is None else f"{moved}, or {claim} is claimed")
        by_id = dict(zip(result["message_ids"] or (), result["ids"] or (), strict=True))
        return Written(tuple((by_id[m.message_id], m) for m in out if m.message_id in by_id))


def _saga_and_steps(
    rows: Sequence[asyncpg.Record],
) -> tuple[dict[str, Any], list[Mapping[Any, Any]]]:
    """Return the saga row and its step rows from a read's joined rows."""
    saga = {c: rows[0][alias] for c, alias in SAGA_ALIASES}
    steps: list[Mapping[Any, Any]] = [
        {c: r[alias] for c, alias in STEP_ALIASES} for r in rows if r["st_saga_id"] is not None
    ]
    return saga, steps


_STABLE = frozenset(
    (
        "type",
        "definition_version",
        "input",
        "resources",
        "shared_resources",
        "trace_id",
        "created_at",
    )
)
"""Saga columns that seldom change after the start (the input above all, which can be large)."""


def _changed(row: dict[str, Any], previous: SagaState | None) -> tuple[str, ...]:
    """Return the saga columns to write: all of a new saga's, else all but unchanged stable ones.

    Skipping the stable columns when none changed saves serialising and parsing the input
    (JSON) and writing it to the WAL again at every step; keeping the rest always written
    keeps the statement shapes to two per kind of decision.
    """
    columns = tuple(c for c in row if c != "id")
    if previous is None:
        return columns
    before = saga_row(previous)
    if any(row[c] is not before[c] and row[c] != before[c] for c in _STABLE):
        return columns
    return tuple(c for c in columns if c not in _STABLE)
