"""asyncpg itself under a SQLAlchemy connection, for the few statements on a message's path.

Through SQLAlchemy, even a plain SQL string costs Python time per statement (an execution
context, result metadata built for every call, greenlet switches) that is most of what the
coordinator and the participants spend per message besides the broker (BENCHMARKS.md). The
hot statements are plain SQL already, so they run here on the asyncpg connection SQLAlchemy
checked out, inside the transaction SQLAlchemy owns:

- the transaction is begun through SQLAlchemy's asyncpg adapter (which begins lazily, at the
  first statement it runs itself), so its COMMIT, ROLLBACK and pool reset stay the usual
  ones and any SQLAlchemy statement later in the same transaction joins it;
- each statement is prepared once per connection (the engine turns asyncpg's own statement
  cache off; SQLAlchemy keeps a cache of its own that these statements never reach);
- a driver error is raised as asyncpg raised it, `convection.db.trouble` classifies it as it
  does SQLAlchemy's, and a connection that died is invalidated so the pool replaces it.

The adapter's `_transaction` and `_start_transaction` are SQLAlchemy internals, pinned by the
lock file and checked by tests/integration/test_pg_driver.py, which fails if they move.
"""

from __future__ import annotations

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


def count_statements(counter: Callable[[], None]) -> None:
    """Call `counter` for every statement run here (`convection.run_stats`, for the bench)."""
    _COUNTERS.append(counter)


async def _statement(driver: asyncpg.Connection, sql: str) -> PreparedStatement:
    cache = _PREPARED.setdefault(driver, {})
    statement = cache.get(sql)
    if statement is None:
        statement = cache[sql] = await driver.prepare(sql)
    return statement


async def fetch(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
    """Run `sql` with positional `args` ($1, $2...) in `conn`'s transaction; return its rows."""
    for counter in _COUNTERS:
        counter()
    fairy = await conn.get_raw_connection()
    driver: asyncpg.Connection = fairy.driver_connection
    try:
        adapted: Any = fairy.dbapi_connection
        if adapted._transaction is None:
            await adapted._start_transaction()
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
