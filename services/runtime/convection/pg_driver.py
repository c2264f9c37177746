"""asyncpg itself under a SQLAlchemy connection, for the few statements on a message's path.

Through SQLAlchemy, even a plain SQL string costs Python time per statement (an execution
context, result metadata built for every call, greenlet switches) that is most of what the
coordinator and the participants spend per message besides the broker (BENCHMARKS.md). The
hot statements are plain SQL already, so they run here on the asyncpg connection SQLAlchemy
checked out: with `fetch` inside the transaction SQLAlchemy owns, with `fetch_alone` in a
transaction of their own (the participant's lock and its procedure that commits, the
coordinator's optimistic write):

- the transaction is begun through SQLAlchemy's asyncpg adapter (which begins lazily, at the
  first statement it runs itself), so its COMMIT, ROLLBACK and pool reset stay the usual
  ones and any SQLAlchemy statement later in the same transaction joins it;
- each statement is prepared once per connection under a name of its own (`convection_N`),
  so PostgreSQL parses and plans it once per connection, not at every call. The engine turns
  asyncpg's own statement cache off, and with it asyncpg prepares unnamed statements, which
  are parsed and planned again at every call (named, PostgreSQL's CPU per bench saga fell
  from 10.3 to 7.1 ms, BENCHMARKS.md). Behind PgBouncer in transaction mode, named
  statements need PgBouncer 1.21 or later with `max_prepared_statements` set;
  `CONVECTION_DB_NAMED_STATEMENTS=0` turns them off for older ones;
- a driver error is raised as asyncpg raised it, `convection.db.trouble` classifies it as it
  does SQLAlchemy's, and a connection that died is invalidated so the pool replaces it.

The adapter's `_transaction` and `_start_transaction` are SQLAlchemy internals, pinned by the
lock file and checked by tests/integration/test_pg_driver.py, which fails if they move.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from sqlalchemy.ext.asyncio import AsyncConnection

_PREPARED: weakref.WeakKeyDictionary[asyncpg.Connection, dict[str, PreparedStatement]] = (
    weakref.WeakKeyDictionary()
)


_COUNTERS: list[Callable[[], None]] = []

NAMED_ENV = "CONVECTION_DB_NAMED_STATEMENTS"
"""Set to 0 to prepare the hot statements unnamed (PgBouncer in transaction mode, before 1.21)."""

_NAMED = os.environ.get(NAMED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
_NAMES = itertools.count(1)


def count_statements(counter: Callable[[], None]) -> None:
    """Call `counter` for every statement run here (`convection.run_stats`, for the bench)."""
    _COUNTERS.append(counter)


async def _statement(driver: asyncpg.Connection, sql: str) -> PreparedStatement:
    cache = _PREPARED.setdefault(driver, {})
    statement = cache.get(sql)
    if statement is None:
        # A name of ours: SQLAlchemy's own statements are unnamed and never collide with it.
        name = f"convection_{next(_NAMES)}" if _NAMED else False
        statement = cache[sql] = await driver.prepare(sql, name=name)
    return statement


async def fetch(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
    """Run `sql` with positional `args` ($1, $2...) in `conn`'s transaction; return its rows."""
    return await _run(conn, sql, args, begin=True)


async def fetch_alone(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
    """Run `sql` in a transaction of its own (committed when it returns); return its rows.

    For a statement that must not join a transaction: a procedure that commits, a lock that
    outlives the statement, a write that is its own commit. `conn` must have no transaction
    open.
    """
    return await _run(conn, sql, args, begin=False)


def _check_alone(adapted: Any, driver: asyncpg.Connection) -> None:
    if adapted._transaction is not None or driver.is_in_transaction():
        raise RuntimeError("fetch_alone: the connection has a transaction open")


async def _run(
    conn: AsyncConnection, sql: str, args: Sequence[Any], *, begin: bool
) -> list[asyncpg.Record]:
    for counter in _COUNTERS:
        counter()
    fairy = await conn.get_raw_connection()
    driver: asyncpg.Connection = fairy.driver_connection
    try:
        adapted: Any = fairy.dbapi_connection
        if adapted._transaction is None and begin:
            await adapted._start_transaction()
        elif not begin:
            _check_alone(adapted, driver)
        statement = await _statement(driver, sql)
        rows: list[asyncpg.Record] = await statement.fetch(*args)
    except asyncpg.InvalidCachedStatementError:
        # The schema changed under a prepared statement: prepare again next time.
        _PREPARED.pop(driver, None)
        raise
    except BaseException:
        if driver.is_closed():
            # Dead (a restart, a terminated backend): the pool must not hand it out again.
            await conn.invalidate()
        raise
    return rows
