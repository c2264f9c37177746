"""A coordinator transaction stalled inside PostgreSQL is ended by another replica's timers.

Found by the fault matrix (a coordinator frozen with SIGSTOP): the frozen replica held a saga's
row lock and an inbox claim in an open transaction, so the replica that received the
redelivered reply waited on them until the frozen one was thawed.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from convection.db import make_engine
from coordinator.store import Store
from coordinator.store.dialect import COORDINATOR_APPLICATION
from tests.integration.coord_support import migrate

pytestmark = [pytest.mark.postgres]


async def _session(dsn: str, app: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"application_name": app})


async def test_only_stalled_coordinator_transactions_are_ended(fresh_pg_url: str) -> None:
    await migrate(fresh_pg_url)
    dsn = fresh_pg_url.replace("postgresql+asyncpg", "postgresql")
    stalled = await _session(dsn, COORDINATOR_APPLICATION)
    idle = await _session(dsn, COORDINATOR_APPLICATION)
    stranger = await _session(dsn, "someone-else")
    engine = make_engine(fresh_pg_url, application_name=COORDINATOR_APPLICATION)
    try:
        for conn in (stalled, stranger):
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO inbox VALUES ($1, now())", f"held-by-{id(conn)}")
        await idle.execute("SELECT 1")
        store = Store(engine)
        assert await store.fence_stalled(older_than=30) == 0  # not stalled for long yet
        await asyncio.sleep(1.5)
        assert await store.fence_stalled(older_than=1) == 1
        # How the ended session fails depends on when asyncpg notices the server closed it:
        # an error from the server, a closed connection, or a protocol in a bad state.
        ended = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
        with pytest.raises((*ended, OSError)):
            await stalled.execute("SELECT 1")
        assert await idle.fetchval("SELECT 1") == 1
        assert await stranger.fetchval("SELECT 1") == 1
        # The stalled transaction rolled back: what it held is free again.
        held = await idle.fetchval("SELECT count(*) FROM inbox")
        assert held == 0
    finally:
        for conn in (stalled, idle, stranger):
            if not conn.is_closed():
                await conn.close()
        await engine.dispose()
