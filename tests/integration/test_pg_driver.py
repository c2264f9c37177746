"""`convection.pg_driver` on the real PostgreSQL: SQLAlchemy's transaction, dead connections.

It leans on two internals of SQLAlchemy's asyncpg adapter (`_transaction`,
`_start_transaction`); these tests fail if an upgrade moves them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from convection import pg_driver
from convection.db import make_engine, trouble

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(fresh_pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_pg_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n integer PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM t"))).scalar_one())


async def test_statements_run_in_sqlalchemys_transaction(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        [row] = await pg_driver.fetch(
            conn, "INSERT INTO t VALUES ($1) RETURNING txid_current() AS tx", (1,)
        )
        # A SQLAlchemy statement after it joins the same transaction.
        assert (await conn.execute(text("SELECT txid_current()"))).scalar_one() == row["tx"]
        again = await pg_driver.fetch(conn, "SELECT txid_current() AS tx", ())
        assert again[0]["tx"] == row["tx"]
    assert await _count(engine) == 1

    async def insert_then_fail() -> None:
        async with engine.begin() as conn:
            await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (2,))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await _count(engine) == 1


async def test_a_statement_alone_commits_by_itself_and_refuses_a_transaction(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await pg_driver.fetch_alone(conn, "INSERT INTO t VALUES ($1)", (1,))
        # Committed when it returned: another connection sees it while this one is held.
        assert await _count_elsewhere(engine) == 1
        await conn.rollback()
    assert await _count(engine) == 1
    async with engine.begin() as conn:
        await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (2,))
        with pytest.raises(RuntimeError, match="transaction open"):
            await pg_driver.fetch_alone(conn, "INSERT INTO t VALUES ($1)", (3,))
    assert await _count(engine) == 2


async def _count_elsewhere(engine: AsyncEngine) -> int:
    connection = await asyncpg.connect(
        engine.url.set(drivername="postgresql").render_as_string(False)
    )
    try:
        return int(await connection.fetchval("SELECT count(*) FROM t"))
    finally:
        await connection.close()


async def test_a_statement_error_is_the_statements_and_the_connection_goes_on(
    engine: AsyncEngine,
) -> None:
    async def insert_twice() -> None:
        async with engine.begin() as conn:
            await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (1,))
            await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (1,))

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await insert_twice()
    assert trouble(caught.value) is None  # the data's fault: not retried as an outage
    async with engine.begin() as conn:
        await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (3,))
    assert await _count(engine) == 1


async def test_a_terminated_backend_is_an_outage_and_its_connection_is_replaced(
    engine: AsyncEngine, fresh_pg_url: str
) -> None:
    admin = make_engine(fresh_pg_url)

    async def insert_after_the_backend_is_terminated() -> None:
        async with engine.begin() as conn:
            [me] = await pg_driver.fetch(conn, "SELECT pg_backend_pid() AS pid", ())
            async with admin.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": me["pid"]})
            await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (4,))

    try:
        with pytest.raises(Exception) as caught:
            await insert_after_the_backend_is_terminated()
        assert trouble(caught.value) == "unavailable", repr(caught.value)
        # The pool (of one) hands out a working connection again, not the dead one.
        async with engine.begin() as conn:
            await pg_driver.fetch(conn, "INSERT INTO t VALUES ($1)", (5,))
        assert await _count(engine) == 1
    finally:
        await admin.dispose()


async def test_a_serialization_failure_is_a_conflict(engine: AsyncEngine) -> None:
    with pytest.raises(asyncpg.SerializationError) as caught:
        async with engine.begin() as conn:
            await pg_driver.fetch(
                conn,
                "DO $$ BEGIN RAISE EXCEPTION 'collided' USING ERRCODE = '40001'; END $$",
                (),
            )
    assert trouble(caught.value) == "conflict"


async def test_a_connection_returned_inside_a_transaction_is_discarded_not_reused(
    engine: AsyncEngine, fresh_pg_url: str
) -> None:
    # A task cancelled while asyncpg was beginning a transaction can leave the driver inside
    # it with SQLAlchemy unaware (sqlalchemy#13381). Reused, the next transaction would be
    # a savepoint inside that one: its "commit" would commit nothing.
    async with engine.connect() as conn:
        fairy = await conn.get_raw_connection()
        await fairy.driver_connection.transaction().start()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (7)"))
    other = make_engine(fresh_pg_url)
    try:
        async with other.connect() as conn:
            seen = (await conn.execute(text("SELECT count(*) FROM t WHERE n = 7"))).scalar_one()
    finally:
        await other.dispose()
    assert seen == 1


async def test_a_statement_is_prepared_once_per_connection_under_a_name(
    engine: AsyncEngine,
) -> None:
    # Unnamed, PostgreSQL would parse and plan it again at every call.
    sql = "SELECT count(*) AS n FROM t WHERE n > $1"
    async with engine.begin() as conn:
        for _ in range(3):
            await pg_driver.fetch(conn, sql, (0,))
        found = await pg_driver.fetch(
            conn, "SELECT name FROM pg_prepared_statements WHERE statement = $1", (sql,)
        )
    assert [row["name"] for row in found] == [found[0]["name"]]
    assert found[0]["name"].startswith("convection_")


async def test_named_statements_can_be_turned_off(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_driver, "_NAMED", False)
    sql = "SELECT count(*) AS n FROM t WHERE n < $1"
    async with engine.begin() as conn:
        [row] = await pg_driver.fetch(conn, sql, (5,))
        assert row["n"] == 0
        found = await pg_driver.fetch(
            conn, "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1", (sql,)
        )
    assert found[0]["n"] == 0
