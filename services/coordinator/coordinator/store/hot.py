"""The hot path on PostgreSQL: each message read in one statement and written in one.

The generic store issues a statement per table (clock, inbox, saga, steps; then saga, steps,
history, outbox, NOTIFY), each compiled by SQLAlchemy. Here the same rows are read and written
by two plain SQL strings, built once from the table definitions and run with
`convection.pg_driver` on the asyncpg connection itself (no compilation, no cache keys, no
result metadata per call; each prepared once per connection):

    read   clock + inbox claim + saga row FOR UPDATE + its steps        one round trip
    write  saga row (checked by version) + changed steps + history + outbox rows, one more

The read takes the row lock and reads the steps in one statement, so the steps come from the
statement's snapshot, which is older than the lock when the lock had to wait: the statement
also reads the saga's version from that snapshot, and when it differs from the locked row's
the steps are read again (a second statement, only under contention). Steps are only ever
written with the saga row's version bumped, so equal versions mean current steps.

SQLite (the embedded mode) keeps the generic store; `HotPath.for_engine` says which.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convection import pg_driver
from coordinator.core import HistoryEntry, SagaState
from coordinator.errors import ConcurrentUpdate
from coordinator.store import tables as t
from coordinator.store.outbox import OutboxMessage, OutboxRow, outbox_row
from coordinator.store.rows import saga_row, state_from_rows, step_row

_SAGA = [c.name for c in t.sagas.c]
_STEP = [c.name for c in t.saga_steps.c]
_HISTORY = [c.name for c in t.saga_history.c if c.name != "id"]
_OUTBOX = ["saga_id", "exchange", "routing_key", "message_id", "body", "headers", "mandatory"]
_OUTBOX += ["span", "created_at", "available_at", "attempts"]
_SAGA_ALIASES = tuple((c, f"s_{c}") for c in _SAGA)
_STEP_ALIASES = tuple((c, f"st_{c}") for c in _STEP)
"""Each column and its name in the read's result (`_read_sql`)."""


def _pg_type(column: Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, t.UtcDateTime):
        return "timestamptz"
    if isinstance(kind, JSON):
        return "jsonb"
    if isinstance(kind, LargeBinary):
        return "bytea"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, String | Text):
        return "text"
    raise TypeError(f"no PostgreSQL type for {column.table.name}.{column.name}: {kind!r}")


def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, JSON))


_JSON = {name: _json_columns(table) for name, table in t.metadata.tables.items()}


def _param(value: Any, json_column: bool) -> Any:
    # SQLAlchemy's JSON type stores None as JSON null; so does this path.
    return json.dumps(value) if json_column else value


class _Numbers:
    """Numbers the positional parameters of one statement as its text is built."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"${self.count}"


def _unnest(table: Table, columns: Sequence[str], n: _Numbers) -> str:
    """Return `unnest($a::type[], ...) AS r(col, ...)`: one array parameter per column."""
    jsons = _JSON[table.name]
    # JSON goes as text and is cast per element: asyncpg's jsonb codec takes no arrays.
    arrays = [f"{n.next()}::{'text' if c in jsons else _pg_type(table.c[c])}[]" for c in columns]
    return f"unnest({', '.join(arrays)}) AS r({', '.join(columns)})"


def _arrays(table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Return the array parameters `_unnest` numbered, in its order."""
    jsons = _JSON[table.name]
    # No call per cell: this runs for every column of every row a message writes.
    dumps = json.dumps
    return [
        [dumps(row[c]) for row in rows] if c in jsons else [row[c] for row in rows] for c in columns
    ]


def _r(table: Table, name: str) -> str:
    return f"r.{name}::jsonb" if name in _JSON[table.name] else f"r.{name}"


@cache
def _read_sql(with_inbox: bool) -> str:
    saga_cols = ", ".join(f"saga.{c} AS s_{c}" for c in _SAGA)
    step_cols = ", ".join(f"st.{c} AS st_{c}" for c in _STEP)
    claimed = (
        "INSERT INTO inbox (message_id, received_at) SELECT $1, at FROM clock "
        "ON CONFLICT DO NOTHING RETURNING 1"
        if with_inbox
        else "SELECT 1 WHERE $1::text IS NULL"
    )
    return f"""
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at),
claimed AS ({claimed}),
saga AS (SELECT * FROM sagas WHERE id = $2 AND EXISTS (SELECT 1 FROM claimed) FOR UPDATE),
seen AS (SELECT version FROM sagas WHERE id = $2)
SELECT clock.at AS clock_at, EXISTS (SELECT 1 FROM claimed) AS fresh,
       (SELECT version FROM seen) AS seen_version, {saga_cols}, {step_cols}
  FROM clock LEFT JOIN saga ON TRUE LEFT JOIN saga_steps st ON st.saga_id = saga.id
 ORDER BY st.ordinal
"""


_START_SQL = """
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at),
claimed AS (INSERT INTO inbox (message_id, received_at) SELECT $1, at FROM clock
            ON CONFLICT DO NOTHING RETURNING 1)
SELECT clock.at AS clock_at, EXISTS (SELECT 1 FROM claimed) AS fresh,
       EXISTS (SELECT 1 FROM sagas WHERE id = $2) AS known
  FROM clock
"""


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
        rows = await pg_driver.fetch(conn, _read_sql(message_id is not None), (message_id, saga_id))
        head = rows[0]
        at = head["clock_at"]
        if not head["fresh"]:
            return Loaded(at, False, None)
        if head["s_id"] is None:
            return Loaded(at, True, None)
        saga = {c: head[alias] for c, alias in _SAGA_ALIASES}
        steps: list[Mapping[Any, Any]] = [
            {c: r[alias] for c, alias in _STEP_ALIASES} for r in rows if r["st_saga_id"] is not None
        ]
        if head["seen_version"] != saga["version"]:
            # The lock waited for a writer: the steps read with it are from before its commit.
            found = await conn.execute(
                select(t.saga_steps)
                .where(t.saga_steps.c.saga_id == saga_id)
                .order_by(t.saga_steps.c.ordinal)
            )
            steps = list(found.mappings())
        return Loaded(at, True, (state_from_rows(saga, steps), saga["parked"]))

    async def claim_start(self, conn: AsyncConnection, message_id: str, saga_id: str) -> Started:
        """Take the time, claim the StartSaga's id, and tell whether the saga exists."""
        [row] = await pg_driver.fetch(conn, _START_SQL, (message_id, saga_id))
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
    ) -> Written | None:
        """Write a decision in one statement: saga row, changed steps, history, outbox rows.

        The saga row is inserted when `previous` is None, else updated if still at its
        version. Returns None when a new saga's id is taken (nothing written); raises
        ConcurrentUpdate when an existing saga moved on meanwhile.
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
        sql = _write_sql(previous is None, saga_cols, bool(steps), bool(history), bool(out))
        # In the order `_write_sql` numbered them.
        jsons = _JSON["sagas"]
        values: list[Any] = [state.saga_id]
        if previous is not None:
            values.append(previous.version)
        values.extend(_param(row[c], c in jsons) for c in saga_cols)
        if steps:
            values.extend(_arrays(t.saga_steps, _STEP if previous is None else _STEP_SET, steps))
        if history:
            entries = [{"saga_id": state.saga_id, **e.model_dump(mode="python")} for e in history]
            values.extend(_arrays(t.saga_history, _HISTORY, entries))
        if out:
            rows = [outbox_row(m, at, available_at) for m in out]
            values.extend(_arrays(t.outbox, _OUTBOX, rows))
        [result] = await pg_driver.fetch(conn, sql, values)
        if not result["written"]:
            if previous is None:
                return None
            raise ConcurrentUpdate(
                f"saga {previous.saga_id} is no longer at version {previous.version}"
            )
        by_id = dict(zip(result["message_ids"] or (), result["ids"] or (), strict=True))
        return Written(tuple((by_id[m.message_id], m) for m in out if m.message_id in by_id))


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


_STEP_SET = ["name", *(c for c in _STEP if c not in ("saga_id", "name"))]
"""The columns of a step update: the key (`name`, the saga is a parameter), then the rest."""


@cache
def _write_sql(
    new: bool, saga_cols: tuple[str, ...], steps: bool, history: bool, outbox: bool
) -> str:
    """Return the write statement of one shape of decision (built once per shape)."""
    n = _Numbers()
    saga_id = f"{n.next()}::text"
    if new:
        values = ", ".join(f"{n.next()}::{_pg_type(t.sagas.c[c])}" for c in saga_cols)
        parts = [
            f"saga AS (INSERT INTO sagas (id, {', '.join(saga_cols)}) VALUES ({saga_id}, "
            f"{values}) ON CONFLICT DO NOTHING RETURNING id)"
        ]
        if steps:
            parts.append(
                f"steps AS (INSERT INTO saga_steps ({', '.join(_STEP)}) SELECT "
                f"{', '.join(_r(t.saga_steps, c) for c in _STEP)} FROM "
                f"{_unnest(t.saga_steps, _STEP, n)} WHERE EXISTS (SELECT 1 FROM saga) RETURNING 1)"
            )
    else:
        version = n.next()
        sets = ", ".join(f"{c} = {n.next()}::{_pg_type(t.sagas.c[c])}" for c in saga_cols)
        parts = [
            f"saga AS (UPDATE sagas SET {sets} WHERE id = {saga_id} AND version = {version} "
            "RETURNING id)"
        ]
        if steps:
            sets = ", ".join(f"{c} = {_r(t.saga_steps, c)}" for c in _STEP_SET[1:])
            parts.append(
                f"steps AS (UPDATE saga_steps AS st SET {sets} FROM "
                f"{_unnest(t.saga_steps, _STEP_SET, n)} "
                f"WHERE st.saga_id = {saga_id} AND st.name = r.name RETURNING 1)"
            )
    if history:
        parts.append(
            f"history AS (INSERT INTO saga_history ({', '.join(_HISTORY)}) SELECT "
            f"{', '.join(_r(t.saga_history, c) for c in _HISTORY)} FROM "
            f"{_unnest(t.saga_history, _HISTORY, n)} WHERE EXISTS (SELECT 1 FROM saga) RETURNING 1)"
        )
    ids = message_ids = "NULL::bigint[]"
    if outbox:
        parts.append(
            f"outbox AS (INSERT INTO outbox ({', '.join(_OUTBOX)}) SELECT "
            f"{', '.join(_r(t.outbox, c) for c in _OUTBOX)} FROM {_unnest(t.outbox, _OUTBOX, n)} "
            "WHERE EXISTS (SELECT 1 FROM saga) ON CONFLICT DO NOTHING RETURNING id, message_id)"
        )
        ids = "(SELECT array_agg(id ORDER BY id) FROM outbox)"
        message_ids = "(SELECT array_agg(message_id ORDER BY id) FROM outbox)"
    return (
        f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM saga) AS written, "
        f"{ids} AS ids, {message_ids} AS message_ids"
    )
