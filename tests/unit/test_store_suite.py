"""One store test suite, run on SQLite (a temporary file) and on the real PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from contracts import SagaStatus
from convection.db import make_engine
from coordinator.core import SagaState, locks
from coordinator.errors import ConcurrentUpdate
from coordinator.store import OutboxMessage, SagaFilter, Store
from coordinator.store.schema import check_schema, current_revision, head_revision, upgrade_engine
from coordinator.store.tables import metadata
from sagas import LockPolicy
from tests.unit.world import T0, World, example


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = make_engine(db_url)
    await upgrade_engine(engine)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


def _states(world: World, saga_id: str) -> list[SagaState]:
    states: list[SagaState] = []
    for sid, _event, decision in world.decisions:
        fresh = not states or states[-1] != decision.state
        if sid == saga_id and decision.verdict == "applied" and fresh:
            states.append(decision.state)
    return states


async def test_migrated_schema_matches_the_tables(store: Store) -> None:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await current_revision(store.engine) == head_revision()
    await check_schema(store.engine)


async def test_every_state_of_a_saga_round_trips(store: Store) -> None:
    world = World()
    world.start("ns.instantiate", "s1", example("ns.instantiate"))
    world.drain({"vdus:vnf-app": "failed"})
    assert world.status("s1") is SagaStatus.COMPENSATED
    states = _states(world, "s1")
    assert len(states) > 5
    async with store.transaction() as conn:
        assert await store.insert_saga(conn, states[0])
        assert not await store.insert_saga(conn, states[0])  # the id exists
        assert await store.load(conn, "s1") == states[0]
        for old, new in itertools.pairwise(states):
            await store.update_saga(conn, old, new)
            assert await store.load(conn, "s1", lock=True) == new
    async with store.engine.connect() as conn:
        assert await store.load(conn, "missing") is None
        [row] = await store.list_sagas(conn, SagaFilter(statuses=("compensated",)), T0)
        assert row["saga_id"] == "s1"
        assert (await store.count_by_status(conn)) == {SagaStatus.COMPENSATED: 1}


async def test_a_stale_version_is_a_concurrent_update(store: Store) -> None:
    world = World()
    world.start("vim-account.create", "v1", example("vim-account.create"))
    world.drain()
    first, *_, last = _states(world, "v1")
    async with store.transaction() as conn:
        await store.insert_saga(conn, first)
        await store.update_saga(conn, first, last)
    with pytest.raises(ConcurrentUpdate):
        async with store.transaction() as conn:
            await store.update_saga(conn, first, last)


async def test_history_is_appended_in_order(store: Store) -> None:
    world = World()
    world.start("vim-account.create", "v1", example("vim-account.create"))
    world.drain()
    state = world.sagas["v1"]
    entries = [e for sid, _, d in world.decisions if sid == "v1" for e in d.history]
    async with store.transaction() as conn:
        await store.insert_saga(conn, state)
        await store.append_history(conn, "v1", entries[:2])
        await store.append_history(conn, "v1", entries[2:])
    async with store.engine.connect() as conn:
        rows = await store.history(conn, "v1")
    assert [r.entry for r in rows] == entries
    assert [r.id for r in rows] == sorted(r.id for r in rows)


async def test_inbox_dedupes_message_ids(store: Store) -> None:
    async with store.transaction() as conn:
        at = await store.now(conn)
        assert await store.claim_inbox(conn, "m1", at)
        assert not await store.claim_inbox(conn, "m1", at)
    async with store.transaction() as conn:
        assert not await store.claim_inbox(conn, "m1", at)
        assert await store.claim_inbox(conn, "m2", at)


def _msg(n: int, mandatory: bool = True) -> OutboxMessage:
    return OutboxMessage(
        "convection.commands", "vim", f"m{n}", b'{"n": %d}' % n, mandatory, {"k": "v"}, "s1"
    )


async def test_a_row_under_its_hand_off_lease_is_not_withdrawn(store: Store) -> None:
    # The writer's relay may be publishing it, unlocked: withdrawing it would call a command
    # "never sent" that the participant then runs, and nothing would undo it.
    async with store.transaction() as conn:
        at = await store.now(conn)
        await store.add_outbox(conn, [_msg(1)], at + timedelta(seconds=10))
        assert await store.withdraw(conn, ["m1"], at) == ()
        assert await store.withdraw(conn, ["m1"], at + timedelta(seconds=10)) == ("m1",)


async def test_outbox_claim_mark_fail_dead_withdraw_purge(store: Store) -> None:
    async with store.transaction() as conn:
        at = await store.now(conn)
        assert await store.add_outbox(conn, [_msg(1), _msg(2), _msg(3, False), _msg(4)], at) == 4
        assert await store.add_outbox(conn, [_msg(1)], at) == 1  # same id: skipped
    async with store.transaction() as conn:
        rows = await store.claim_outbox(conn, at, 2)
        assert [r.message_id for r in rows] == ["m1", "m2"]
        assert rows[0].body == b'{"n": 1}' and rows[0].headers == {"k": "v"} and rows[0].mandatory
        await store.mark_sent(conn, [rows[0].id], at)
        await store.mark_failed(conn, rows[1].id, "boom", retry_at=at + timedelta(hours=1))
    async with store.transaction() as conn:
        rows = await store.claim_outbox(conn, at, 10)
        assert [r.message_id for r in rows] == ["m3", "m4"]
        assert not rows[0].mandatory
        await store.mark_failed(conn, rows[0].id, "unroutable", retry_at=at, dead_at=at)
        # Withdrawing deletes only unsent rows, and says which.
        assert await store.withdraw(conn, ["m1", "m2", "m4", "nope"], at) == ("m2", "m4")
    async with store.transaction() as conn:
        assert await store.claim_outbox(conn, at + timedelta(days=1), 10) == []
        backlog, oldest, dead = await store.outbox_stats(conn)
        assert (backlog, dead) == (0, 1)
        assert oldest is None
        assert await store.purge_sent(conn, at + timedelta(seconds=1), limit=10) == 1
        assert await store.purge_sent(conn, at + timedelta(seconds=1), limit=10) == 0


@pytest.mark.parametrize("settle", ["mark_sent_now", "forget_sent"])
async def test_handed_off_rows_settled_together_are_not_claimed_again(
    store: Store, settle: str
) -> None:
    async with store.transaction() as conn:
        at = await store.now(conn)
        await store.add_outbox(conn, [_msg(1), _msg(2), _msg(3)], at)
        rows = await store.claim_outbox(conn, at, 10)
    by_id = {r.message_id: r.id for r in rows}
    for ids in ([], [by_id["m1"]], [by_id["m1"], by_id["m3"]]):
        async with store.transaction() as conn:
            # Any count, and a row settled twice; marked sent, or deleted (no retention).
            await getattr(store, settle)(conn, ids)
    async with store.transaction() as conn:
        later = at + timedelta(hours=1)
        assert [r.message_id for r in await store.claim_outbox(conn, later, 10)] == ["m2"]
        # A sent step's message cannot be withdrawn either way: the step counts as sent.
        assert await store.withdraw(conn, ["m1", "m2"], later) == ("m2",)
        assert (await store.outbox_stats(conn))[0] == 0


async def test_lock_rows_hold_fifo_queues(store: Store) -> None:
    a, b, c = (locks.Claimant(f"s{i}", "ns.instantiate") for i in "abc")
    table: dict[str, locks.LockQueue] = {}
    for who, res in ((a, ["ns:1"]), (b, ["ns:1", "ns:2"]), (c, ["ns:2"])):
        table = locks.acquire(table, who, res, LockPolicy.WAIT).table
    async with store.transaction() as conn:
        await store.save_locks(conn, table)
    async with store.engine.connect() as conn:
        # From one resource, the closure reaches every queue of every waiter in it.
        loaded = await store.load_locks(conn, resources=["ns:1"])
        assert loaded == table
        assert await store.load_locks(conn, saga_id="sc") == table
        assert await store.load_locks(conn, resources=["ns:9"]) == {"ns:9": locks.LockQueue("ns:9")}
    released = locks.release(table, "sa")
    assert [w.saga_id for w in released.granted] == ["sb"]
    async with store.transaction() as conn:
        await store.save_locks(conn, released.table)
        assert await store.load_locks(conn, saga_id="sb") == released.table


async def test_timers_find_due_steps_and_sagas(store: Store) -> None:
    world = World()
    world.start("ns.instantiate", "s1", example("ns.instantiate"))
    state = world.sagas["s1"]
    assert state.deadline is not None
    async with store.transaction() as conn:
        await store.insert_saga(conn, state)
        assert await store.due_steps(conn, T0, 10) == []
        [due] = await store.due_steps(conn, T0 + timedelta(minutes=1), 10)
        assert (due.saga_id, due.name, due.status, due.attempt) == (
            "s1",
            "vim-account",
            "running",
            1,
        )
        assert await store.due_sagas(conn, T0, 10) == []
        assert await store.due_sagas(conn, state.deadline, 10) == ["s1"]
        await store.mark_deadline_fired(conn, "s1")
        assert await store.due_sagas(conn, state.deadline, 10) == []
