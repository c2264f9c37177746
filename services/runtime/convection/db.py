"""Database engines from a URL: PostgreSQL through asyncpg, SQLite through aiosqlite.

Dialect quirks live here and only here, so the rest of the code is the same on both.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Return `url` with the async driver this project uses for its dialect."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
# serialization failure, deadlock, lock not available
_UNAVAILABLE_PREFIXES = ("08", "57P", "53300")
# connection exceptions; operator intervention (admin shutdown, crash shutdown, cannot connect);
# too many connections

DatabaseTrouble = Literal["unavailable", "conflict"]
"""What a driver error says about the database rather than about the work."""


def trouble(exc: BaseException) -> DatabaseTrouble | None:
    """Return whether `exc` means the database is unreachable or the transaction collided.

    None means the error is about the statement or the data (a bug, a constraint), which
    trying again in the same way would not cure.
    """
    if isinstance(exc, OSError | ConnectionError | PoolTimeout):
        return "unavailable"
    if not isinstance(exc, DBAPIError):
        # asyncpg's own error (`convection.pg_driver`), or SQLAlchemy's adapter's around one.
        driver = exc if isinstance(exc, _DRIVER_ERRORS) else exc.__cause__
        return _driver_trouble(driver) if isinstance(driver, _DRIVER_ERRORS) else None
    orig = exc.orig
    code = sqlstate(exc)
    if code in _CONFLICT_SQLSTATES:
        return "conflict"
    if exc.connection_invalidated or (code is not None and code.startswith(_UNAVAILABLE_PREFIXES)):
        return "unavailable"
    if "database is locked" in str(orig):
        # SQLite: another process held the write lock longer than busy_timeout.
        return "conflict"
    if isinstance(exc, InterfaceError) and code is None:
        # asyncpg: the connection closed in the middle of an operation.
        return "unavailable"
    return None


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def _driver_trouble(exc: BaseException) -> DatabaseTrouble | None:
    if isinstance(exc, asyncpg.PostgresError):
        code = exc.sqlstate or ""
        if code in _CONFLICT_SQLSTATES:
            return "conflict"
        return "unavailable" if code.startswith(_UNAVAILABLE_PREFIXES) else None
    # Interface and client errors: the connection closed or broke in mid-operation.
    return "unavailable"


def sqlstate(exc: DBAPIError) -> str | None:
    """Return the SQLSTATE of a driver error, when the driver gave one."""
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code is None and orig is not None:
        code = getattr(orig.__cause__, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_sqlite(engine: AsyncEngine) -> bool:
    """Tell whether `engine` is an SQLite engine (the embedded mode)."""
    return engine.dialect.name == "sqlite"


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    echo: bool = False,
    pre_ping: bool = False,
    application_name: str | None = None,
) -> AsyncEngine:
    """Create an async engine for `url` with the settings each dialect needs.

    `application_name` names the connections in PostgreSQL's `pg_stat_activity`.

    No pre-ping by default: it costs a transaction (BEGIN, a ping, ROLLBACK) on every
    checkout. A connection that died is found by the statement that uses it instead: the
    driver's error invalidates the pool (every older connection is replaced on its next
    checkout), `trouble()` calls it `unavailable`, and the caller retries (the coordinator's
    transactions, the participants' outage loop) or answers 503 (the API's reads).
    """
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        # One writer at a time: wait for the lock instead of failing at once.
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # statement_cache_size=0 keeps asyncpg usable behind PgBouncer transaction pooling (for
    # the coordinator; participants hold session advisory locks and need session pooling).
    kwargs["connect_args"] = {"statement_cache_size": 0}
    if application_name is not None:
        kwargs["connect_args"]["server_settings"] = {"application_name": application_name}
    kwargs["pool_size"] = pool_size
    kwargs["max_overflow"] = pool_size
    kwargs["pool_pre_ping"] = pre_ping
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_open_transaction)
    return engine


def _refuse_open_transaction(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Discard a pooled connection still inside a transaction SQLAlchemy does not know of.

    A task cancelled while asyncpg was beginning a transaction can leave the driver inside it
    with SQLAlchemy unaware (sqlalchemy#13381). Reused, every later transaction on it would
    be a savepoint of that one, and its commit would commit nothing. Raising
    DisconnectionError makes the pool close it and hand out another.
    """
    driver = getattr(dbapi_conn, "driver_connection", None)
    if driver is None or getattr(dbapi_conn, "_transaction", None) is not None:
        return
    if driver.is_in_transaction() or getattr(driver, "_top_xact", None) is not None:
        _log.warning("discarding a pooled database connection left inside a transaction")
        raise DisconnectionError("pooled connection inside a transaction nobody owns")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory: one session per unit of work, nothing expired on commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
