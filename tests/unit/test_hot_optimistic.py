"""The optimistic statements of the hot path, on the real PostgreSQL.

A message processed alone is read without a lock (`HotPath.peek`) and written by one statement
that also claims its id (`HotPath.write(claim=...)`). What must hold: the claim and the write
happen together or not at all, a moved saga or a claimed id writes nothing, and the locking path
that runs next does not take the message for a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncTransaction

from convection import pg_driver
from convection.db import make_engine
from coordinator.core import SagaState
from coordinator.errors import ConcurrentUpdate
from coordinator.store import Store
from coordinator.store import tables as t
from coordinator.store.hot import HotPath
from coordinator.store.schema import upgrade_engine
from tests.unit.world import T0, World, example

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(fresh_pg_url: str) -> AsyncIterator[Store]:
    engine = make_engine(fresh_pg_url)
    await upgrade_engine(engine)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


def _hot(store: Store) -> HotPath:
    assert store.hot is not None
    return store.hot


def _states() -> list[SagaState]:
    world = World()
    world.start("vim-account.create", "v1", example("vim-account.create"))
    world.drain()
    states: list[SagaState] = []
    for _sid, _event, decision in world.decisions:
        if decision.verdict == "applied" and (not states or states[-1] != decision.state):
            states.append(decision.state)
    assert len(states) >= 3
    return states


async def _claimed(store: Store, message_id: str) -> bool:
    async with store.engine.connect() as conn:
        query = select(func.count()).select_from(t.inbox).where(t.inbox.c.message_id == message_id)
        return bool((await conn.execute(query)).scalar_one())


async def _waiting_for_a_lock(store: Store, task: asyncio.Task[object]) -> None:
    """Return once a backend of this database waits for a lock (the write, on the claim)."""
    query = (
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with store.engine.connect() as conn:
        for _ in range(200):
            assert not task.done(), "the write did not wait for the open claim"
            # Each poll its own transaction: one transaction sees one pg_stat_activity snapshot.
            [row] = await pg_driver.fetch_alone(conn, query, ())
            if row["n"]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the write never waited for the open claim")


async def _version(store: Store) -> int:
    async with store.engine.connect() as conn:
        found = await conn.execute(select(t.sagas.c.version).where(t.sagas.c.id == "v1"))
        return int(found.scalar_one())


async def test_a_new_saga_and_its_claim_are_written_together_once(store: Store) -> None:
    first, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        seen = await hot.peek_start(conn, "m-start", "v1")
        assert seen.fresh
        assert not seen.known
        written = await hot.write(
            conn, None, first, [], [], at=T0, available_at=T0, claim="m-start"
        )
        assert written is not None
        # The same message again writes nothing: the id is claimed.
        again = await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-start")
        assert again is None
        seen = await hot.peek_start(conn, "m-start", "v1")
        assert not seen.fresh
        assert seen.known
    assert await _claimed(store, "m-start")


async def test_a_taken_saga_id_leaves_the_message_unclaimed(store: Store) -> None:
    first, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        assert await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-a")
        assert (
            await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-b") is None
        )
    assert await _claimed(store, "m-a")
    assert not await _claimed(store, "m-b")


async def test_a_moved_saga_writes_nothing_and_claims_nothing(store: Store) -> None:
    first, second, third, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-0")
        seen = await hot.peek(conn, "m-1", "v1")
        assert seen.fresh
        assert seen.found is not None
        assert seen.found[0] == first
        await hot.write(conn, first, second, [], [], at=T0, available_at=T0, claim="m-1")
        # Another message decided on the state before m-1 was applied: the saga moved.
        with pytest.raises(ConcurrentUpdate):
            await hot.write(conn, first, third, [], [], at=T0, available_at=T0, claim="m-2")
        # m-1 again, even at the right version, is a claimed id: nothing is applied twice.
        with pytest.raises(ConcurrentUpdate):
            await hot.write(conn, second, third, [], [], at=T0, available_at=T0, claim="m-1")
        assert not (await hot.peek(conn, "m-1", "v1")).fresh
    assert await _version(store) == second.version
    assert not await _claimed(store, "m-2")
    # The locking path that runs m-2 next claims it: it is not taken for a duplicate.
    async with store.transaction() as conn:
        loaded = await hot.claim_and_lock(conn, "m-2", "v1")
    assert loaded.fresh
    assert loaded.found is not None
    # Not a step of the refused writes landed either.
    assert loaded.found[0] == second


async def test_the_optimistic_write_refuses_an_open_transaction(store: Store) -> None:
    first, *_ = _states()
    hot = _hot(store)
    # The statement is its own transaction: inside another one it would not commit alone.
    async with store.transaction() as conn:
        await pg_driver.fetch(conn, "SELECT 1", ())
        with pytest.raises(RuntimeError, match="transaction open"):
            await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-x")
    assert not await _claimed(store, "m-x")


@asynccontextmanager
async def _claim_left_open(store: Store, message_id: str) -> AsyncIterator[AsyncTransaction]:
    """Another replica's locking path: `message_id` claimed in a transaction still open."""
    async with store.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            claim = "INSERT INTO inbox (message_id, received_at) VALUES ($1, now())"
            await pg_driver.fetch(conn, claim, (message_id,))
            yield transaction
        finally:
            if transaction.is_active:
                await transaction.rollback()


async def test_an_id_claimed_by_an_open_locking_transaction_fails_the_whole_write(
    store: Store,
) -> None:
    first, second, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-0")
        seen = await hot.peek(conn, "m-1", "v1")
        assert seen.fresh
    # Another replica's locking path claims m-1 after the peek and holds its transaction open:
    # it moves no version, so only the claim itself can stop the optimistic write.
    async with _claim_left_open(store, "m-1") as claim, store.reading() as conn:
        write = hot.write(conn, first, second, [], [], at=T0, available_at=T0, claim="m-1")
        task = asyncio.create_task(write)
        # The write waits for the open claim; it must not pass it by.
        await _waiting_for_a_lock(store, task)
        await claim.commit()
        with pytest.raises(ConcurrentUpdate, match="claimed meanwhile"):
            await task
    # Nothing of the refused write landed: the saga is at the version the locking path left.
    assert await _version(store) == first.version
    assert await _claimed(store, "m-1")


async def test_an_open_claim_that_rolls_back_lets_the_write_through(store: Store) -> None:
    first, second, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-0")
    async with _claim_left_open(store, "m-1") as claim, store.reading() as conn:
        write = hot.write(conn, first, second, [], [], at=T0, available_at=T0, claim="m-1")
        task = asyncio.create_task(write)
        await _waiting_for_a_lock(store, task)
        await claim.rollback()
        assert await task is not None
    assert await _version(store) == second.version
    assert await _claimed(store, "m-1")


async def test_a_saga_parked_after_the_peek_is_not_written(store: Store) -> None:
    first, second, *_ = _states()
    hot = _hot(store)
    async with store.reading() as conn:
        await hot.write(conn, None, first, [], [], at=T0, available_at=T0, claim="m-0")
        seen = await hot.peek(conn, "m-1", "v1")
        assert seen.found is not None
        assert seen.found[1] is None
    # A replica without the saga's definition parks it: the version stays where it was.
    async with store.transaction() as conn:
        await store.park(conn, "v1", "definition_missing: x@1", "{}", "m-9", T0)
    async with store.reading() as conn:
        with pytest.raises(ConcurrentUpdate):
            await hot.write(conn, first, second, [], [], at=T0, available_at=T0, claim="m-1")
        peeked = await hot.peek(conn, "m-1", "v1")
    assert peeked.fresh
    assert peeked.found is not None
    assert peeked.found[1] == "definition_missing: x@1"
    assert await _version(store) == first.version
