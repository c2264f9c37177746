"""The SQL text of the hot path (`coordinator.store.hot`), built once from the table definitions.

Each statement's positional parameters are numbered as its text is built (`_Numbers`); the
values go in the same order (`arrays`). Rows of a table travel as one array parameter per
column and come back as rows through `unnest`, so a statement's shape does not depend on how
many rows it writes and each shape is prepared once per connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
)

from coordinator.store import tables as t

SAGA_COLUMNS = [c.name for c in t.sagas.c]
"""The saga row's columns, as the reads return them."""
STEP_COLUMNS = [c.name for c in t.saga_steps.c]
"""A step row's columns, as the reads return and a new saga's write inserts them."""
HISTORY_COLUMNS = [c.name for c in t.saga_history.c if c.name != "id"]
"""The history columns a write inserts (the id is the database's)."""
OUTBOX_COLUMNS = [
    "saga_id",
    "exchange",
    "routing_key",
    "message_id",
    "body",
    "headers",
    "mandatory",
]
OUTBOX_COLUMNS += ["span", "created_at", "available_at", "attempts"]
"""The outbox columns a write inserts."""
SAGA_ALIASES = tuple((c, f"s_{c}") for c in SAGA_COLUMNS)
"""Each saga column and its name in a read's result (`read_sql`, `PEEK_SQL`)."""
STEP_ALIASES = tuple((c, f"st_{c}") for c in STEP_COLUMNS)
"""Each step column and its name in a read's result (`read_sql`, `PEEK_SQL`)."""


def pg_type(column: Column[Any]) -> str:
    """Return the PostgreSQL type a column's parameter is cast to."""
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


JSON_COLUMNS = {name: _json_columns(table) for name, table in t.metadata.tables.items()}
"""Each table's JSON columns, whose values travel as text."""


def param(value: Any, json_column: bool) -> Any:
    """Return one column's value as a parameter (JSON as its text)."""
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
    jsons = JSON_COLUMNS[table.name]
    # JSON goes as text and is cast per element: asyncpg's jsonb codec takes no arrays.
    arrays = [f"{n.next()}::{'text' if c in jsons else pg_type(table.c[c])}[]" for c in columns]
    return f"unnest({', '.join(arrays)}) AS r({', '.join(columns)})"


def arrays(table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Return the array parameters `_unnest` numbered, in its order."""
    jsons = JSON_COLUMNS[table.name]
    # No call per cell: this runs for every column of every row a message writes.
    dumps = json.dumps
    return [
        [dumps(row[c]) for row in rows] if c in jsons else [row[c] for row in rows] for c in columns
    ]


def _r(table: Table, name: str) -> str:
    return f"r.{name}::jsonb" if name in JSON_COLUMNS[table.name] else f"r.{name}"


@cache
def read_sql(with_inbox: bool) -> str:
    """Return the locking read: the clock, the inbox claim, the saga FOR UPDATE, its steps."""
    saga_cols = ", ".join(f"saga.{c} AS s_{c}" for c in SAGA_COLUMNS)
    step_cols = ", ".join(f"st.{c} AS st_{c}" for c in STEP_COLUMNS)
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


PEEK_SQL = f"""
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at)
SELECT clock.at AS clock_at,
       NOT EXISTS (SELECT 1 FROM inbox WHERE message_id = $1::text) AS fresh,
       {", ".join(f"saga.{c} AS s_{c}" for c in SAGA_COLUMNS)},
       {", ".join(f"st.{c} AS st_{c}" for c in STEP_COLUMNS)}
  FROM clock LEFT JOIN sagas saga ON saga.id = $2::text
  LEFT JOIN saga_steps st ON st.saga_id = saga.id
 ORDER BY st.ordinal
"""
"""The optimistic read, no lock and no transaction: the clock, whether the message id is
new, the saga and its steps (one snapshot, so the steps match the row's version)."""

PEEK_START_SQL = """
SELECT clock_timestamp() AS clock_at,
       NOT EXISTS (SELECT 1 FROM inbox WHERE message_id = $1::text) AS fresh,
       EXISTS (SELECT 1 FROM sagas WHERE id = $2::text) AS known
"""
"""The optimistic read of a start: the clock, whether its id is new, whether the saga exists."""

START_SQL = """
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at),
claimed AS (INSERT INTO inbox (message_id, received_at) SELECT $1, at FROM clock
            ON CONFLICT DO NOTHING RETURNING 1)
SELECT clock.at AS clock_at, EXISTS (SELECT 1 FROM claimed) AS fresh,
       EXISTS (SELECT 1 FROM sagas WHERE id = $2) AS known
  FROM clock
"""
"""The locking read of a start: the clock, the inbox claim, whether the saga exists."""


STEP_SET = ["name", *(c for c in STEP_COLUMNS if c not in ("saga_id", "name"))]
"""The columns of a step update: the key (`name`, the saga is a parameter), then the rest."""


@cache
def write_sql(
    new: bool,
    saga_cols: tuple[str, ...],
    steps: bool,
    history: bool,
    outbox: bool,
    claim: bool = False,
) -> str:
    """Return the write statement of one shape of decision (built once per shape).

    `claim`: the statement also claims the message id in the inbox, and writes nothing if
    the id is claimed already or the saga is parked (the optimistic path, where this statement
    is the transaction); an id claimed after its snapshot fails it with a unique violation.
    """
    n = _Numbers()
    saga_id = f"{n.next()}::text"
    # The saga row is written only if the message id is new, and the id is claimed only if
    # the row was written, so a moved saga leaves no claim behind to make the retry a duplicate.
    message = f"{n.next()}::text" if claim else ""
    unclaimed = f"NOT EXISTS (SELECT 1 FROM inbox WHERE message_id = {message})" if claim else ""
    if new:
        values = ", ".join(f"{n.next()}::{pg_type(t.sagas.c[c])}" for c in saga_cols)
        parts = [
            f"saga AS (INSERT INTO sagas (id, {', '.join(saga_cols)}) SELECT {saga_id}, "
            f"{values} WHERE {unclaimed or 'TRUE'} ON CONFLICT DO NOTHING RETURNING id)"
        ]
        if steps:
            parts.append(
                f"steps AS (INSERT INTO saga_steps ({', '.join(STEP_COLUMNS)}) SELECT "
                f"{', '.join(_r(t.saga_steps, c) for c in STEP_COLUMNS)} FROM "
                f"{_unnest(t.saga_steps, STEP_COLUMNS, n)} "
                "WHERE EXISTS (SELECT 1 FROM saga) RETURNING 1)"
            )
    else:
        version = n.next()
        sets = ", ".join(f"{c} = {n.next()}::{pg_type(t.sagas.c[c])}" for c in saga_cols)
        parts = [
            # A parked saga keeps its version: only the locking path may write one, in order
            # after its kept events (the check is made again on a row another write changed).
            f"saga AS (UPDATE sagas SET {sets} WHERE id = {saga_id} AND version = {version} "
            f"{'AND parked IS NULL AND ' + unclaimed if claim else ''} RETURNING id)"
        ]
        if steps:
            sets = ", ".join(f"{c} = {_r(t.saga_steps, c)}" for c in STEP_SET[1:])
            parts.append(
                f"steps AS (UPDATE saga_steps AS st SET {sets} FROM "
                f"{_unnest(t.saga_steps, STEP_SET, n)} "
                f"WHERE st.saga_id = {saga_id} AND st.name = r.name "
                # Nothing of a refused write may land: the optimistic one has no ROLLBACK.
                "AND EXISTS (SELECT 1 FROM saga) RETURNING 1)"
            )
    if history:
        parts.append(
            f"history AS (INSERT INTO saga_history ({', '.join(HISTORY_COLUMNS)}) SELECT "
            f"{', '.join(_r(t.saga_history, c) for c in HISTORY_COLUMNS)} FROM "
            f"{_unnest(t.saga_history, HISTORY_COLUMNS, n)} "
            "WHERE EXISTS (SELECT 1 FROM saga) RETURNING 1)"
        )
    if claim:
        # No ON CONFLICT: the check above reads the statement's snapshot, and a locking
        # transaction may claim the id after it without moving the saga's version. Then this
        # insert fails (waiting for that transaction first) and the whole statement with it,
        # rather than writing the saga row and leaving the id unclaimed.
        parts.append(
            f"claimed AS (INSERT INTO inbox (message_id, received_at) SELECT {message}, now() "
            "WHERE EXISTS (SELECT 1 FROM saga) RETURNING 1)"
        )
    ids = message_ids = "NULL::bigint[]"
    if outbox:
        parts.append(
            f"outbox AS (INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) SELECT "
            f"{', '.join(_r(t.outbox, c) for c in OUTBOX_COLUMNS)} "
            f"FROM {_unnest(t.outbox, OUTBOX_COLUMNS, n)} "
            "WHERE EXISTS (SELECT 1 FROM saga) ON CONFLICT DO NOTHING RETURNING id, message_id)"
        )
        ids = "(SELECT array_agg(id ORDER BY id) FROM outbox)"
        message_ids = "(SELECT array_agg(message_id ORDER BY id) FROM outbox)"
    return (
        f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM saga) AS written, "
        f"{ids} AS ids, {message_ids} AS message_ids"
    )
