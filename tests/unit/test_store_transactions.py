"""The shell around the store: transaction retries, the relay's dead rows, the timers.

On SQLite with the in-process broker, except the retry test, which needs a real
PostgreSQL serialization failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import StartSaga, topology
from convection.db import make_engine
from convection.transport import MemoryBroker, open_transport
from coordinator.core import Engine, LockGranted, SagaState
from coordinator.errors import Conflict
from coordinator.metrics import Metrics
from coordinator.processor import Processor
from coordinator.relay import OutboxRelay
from coordinator.store import OutboxMessage, Store, tables, upgrade_engine
from coordinator.store.dialect import translate
from coordinator.timers import Timers
from sagas import osm_registry
from tests.integration.coord_support import eventually
from tests.unit.world import OSM_TOPOLOGY, example

SERIALIZATION_FAILURE = "DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '40001'; END $$"


@dataclass
class Shell:
    store: Store
    processor: Processor
    metrics: Metrics


async def _shell(url: str) -> Shell:
    engine = make_engine(url)
    await upgrade_engine(engine)
    store, metrics = Store(engine), Metrics()
    return Shell(
        store, Processor(store=store, engine=Engine(osm_registry()), metrics=metrics), metrics
    )


@pytest.fixture
async def sqlite_shell(tmp_path: Path) -> AsyncIterator[Shell]:
    shell = await _shell(f"sqlite+aiosqlite:///{tmp_path / 'shell.db'}")
    yield shell
    await shell.store.engine.dispose()


@pytest.mark.postgres
async def test_a_serialization_failure_retries_the_whole_transaction(fresh_pg_url: str) -> None:
    shell = await _shell(fresh_pg_url)
    try:
        async with shell.store.engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text(SERIALIZATION_FAILURE))
            assert isinstance(translate(caught.value), Conflict)
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT 1/0"))
            assert translate(caught.value) is None
        msg = StartSaga(
            saga_type="vim-account.create", saga_id="r1", input=example("vim-account.create")
        )
        assert (await shell.processor.start_saga(msg)).kind == "applied"
        calls = 0

        async def fail_once(conn: AsyncConnection, _state: SagaState) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await conn.execute(text(SERIALIZATION_FAILURE))

        outcome = await shell.processor.feed(
            "r1", lambda at: LockGranted(at=at), message_id="wake-1", after=fail_once
        )
        # Granted already, so the engine ignores it, but the inbox row must have been
        # written once: the first attempt rolled back entirely, the second committed.
        assert outcome.kind == "ignored"
        assert calls == 2
        assert shell.metrics.transaction_retries._value.get() == 1
        again = await shell.processor.feed("r1", lambda at: LockGranted(at=at), message_id="wake-1")
        assert again.kind == "duplicate"
    finally:
        await shell.store.engine.dispose()


async def test_a_poison_row_goes_dead_and_never_blocks_the_rows_behind(sqlite_shell: Shell) -> None:
    store = sqlite_shell.store
    broker = MemoryBroker()
    transport = open_transport("memory://", OSM_TOPOLOGY, memory_broker=broker)
    await transport.connect()
    relay = OutboxRelay(
        store=store, transport=transport, metrics=sqlite_shell.metrics, max_attempts=2, batch=10
    )
    async with store.transaction() as conn:
        at = await store.now(conn)
        await store.add_outbox(
            conn,
            [
                OutboxMessage(topology.COMMANDS_EXCHANGE, "nobody", "poison", b"{}"),
                OutboxMessage(topology.COMMANDS_EXCHANGE, "vim", "good", b"{}"),
                OutboxMessage(
                    topology.EVENTS_EXCHANGE, "saga.x.y", "event", b"{}", mandatory=False
                ),
            ],
            at,
        )
    assert await relay.relay_once() == 3
    assert await transport.queue_depth(topology.command_queue("vim")) == 1
    async with store.transaction() as conn:
        # Backed off: not due yet. Make it due again to reach the attempt limit.
        assert await store.claim_outbox(conn, at, 10) == []
        await conn.execute(update(tables.outbox).values(available_at=at))
    assert await relay.relay_once() == 1
    async with store.transaction() as conn:
        row = (
            await conn.execute(
                text("SELECT attempts, dead_at, last_error FROM outbox WHERE message_id = 'poison'")
            )
        ).one()
    assert row[0] == 2 and row[1] is not None and "Unroutable" in row[2]
    assert sqlite_shell.metrics.outbox_dead._value.get() == 1
    assert await relay.relay_once() == 0
    await relay.maintain()
    assert sqlite_shell.metrics.outbox_backlog._value.get() == 0
    await transport.close()


async def _set(store: Store, table: str, where: str, **values: object) -> None:
    tbl = getattr(tables, table)
    async with store.transaction() as conn:
        await conn.execute(update(tbl).where(text(where)).values(**values))


async def test_timers_feed_step_deadlines_retries_and_saga_deadlines(sqlite_shell: Shell) -> None:
    store, processor = sqlite_shell.store, sqlite_shell.processor
    timers = Timers(processor=processor, metrics=sqlite_shell.metrics)
    data = example("ns.instantiate")
    assert (
        await processor.start_saga(StartSaga(saga_type="ns.instantiate", saga_id="t1", input=data))
    ).kind == "applied"
    assert await timers.tick() == 0
    async with store.engine.connect() as conn:
        now = await store.now(conn)
    past = now - timedelta(seconds=1)
    # The first step's deadline passes: timed out, a retry is scheduled.
    await _set(store, "saga_steps", "name = 'vim-account'", deadline=past)
    assert await timers.tick() == 1
    # The retry is due: the step starts again (attempt 2).
    await _set(store, "saga_steps", "name = 'vim-account'", due_at=past)
    assert await timers.tick() == 1
    async with store.engine.connect() as conn:
        state = await store.load(conn, "t1")
        kinds = [(r.entry.kind, r.entry.attempt) for r in await store.history(conn, "t1")]
    assert ("step.timed_out", 1) in kinds and ("step.started", 2) in kinds
    assert state.step("vim-account").attempt == 2
    # The saga's own deadline passes before its pivot: it compensates, and is fed once.
    await _set(store, "sagas", "id = 't1'", deadline=past)
    assert await timers.tick() == 1
    assert await timers.tick() == 0
    async with store.engine.connect() as conn:
        state = await store.load(conn, "t1")
    assert state.error is not None and state.error.code == "saga_timeout"
    assert sqlite_shell.metrics.timers.labels("saga_timed_out")._value.get() == 1


@pytest.mark.postgres
async def test_notify_from_another_replica_wakes_the_relay_before_its_poll(
    fresh_pg_url: str,
) -> None:
    shell = await _shell(fresh_pg_url)
    other = Store(make_engine(fresh_pg_url))
    transport = open_transport("memory://", OSM_TOPOLOGY, memory_broker=MemoryBroker())
    await transport.connect()
    relay = OutboxRelay(
        store=shell.store, transport=transport, metrics=shell.metrics, poll_interval=60
    )
    await relay.start()
    try:
        await asyncio.sleep(1.0)  # the LISTEN connection is up, the first pass is done
        async with other.transaction() as conn:
            msg = OutboxMessage(topology.COMMANDS_EXCHANGE, "vim", "from-elsewhere", b"{}")
            await other.add_outbox(conn, [msg], await other.now(conn))

        async def sent() -> bool:
            return await transport.queue_depth(topology.command_queue("vim")) == 1

        await eventually(sent, within=10, every=0.05)
    finally:
        await relay.stop()
        await transport.close()
        await other.engine.dispose()
        await shell.store.engine.dispose()
