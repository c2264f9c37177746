"""The coordinator's optimistic path, through the Processor, on the real PostgreSQL.

A start or a reply processed alone is read without a lock and written, with its inbox claim, by
one statement. These tests drive real messages through it, and through its way out: a saga that
moves between the read and the write gives way to the locking path, which applies the message
once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, text

from contracts import Command, Reply, StartSaga, decode, reply_to
from convection.db import make_engine
from convection_bench.noop import sagas as noop
from coordinator.core import Engine
from coordinator.definitions import load_registry
from coordinator.metrics import Metrics
from coordinator.processor import Processor
from coordinator.store import Store, tables, upgrade_engine
from coordinator.store.hot import Loaded
from sagas import Registry, osm_registry
from tests.unit.world import example, fake_result

pytestmark = pytest.mark.postgres


@pytest.fixture
async def shell(fresh_pg_url: str) -> AsyncIterator[tuple[Store, Processor, Metrics]]:
    engine = make_engine(fresh_pg_url)
    await upgrade_engine(engine)
    store, metrics = Store(engine), Metrics()
    try:
        registry = Registry([*load_registry("bench"), *osm_registry()])
        yield store, Processor(store=store, engine=Engine(registry), metrics=metrics), metrics
    finally:
        await engine.dispose()


def _noop(saga_id: str) -> StartSaga:
    return StartSaga(saga_type=noop.SAGA_TYPE, saga_id=saga_id, input={"steps": 3, "payload": "x"})


def _count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "convection_coordinator_optimistic_total", {"result": result}
    )
    return value or 0.0


async def _commands(store: Store, saga_id: str) -> list[Command]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.outbox.c.body)
            .where(tables.outbox.c.saga_id == saga_id)
            .order_by(tables.outbox.c.id)
        )
        found = [decode(bytes(body)) for (body,) in rows]
    return [m for m in found if isinstance(m, Command)]


async def _succeed(store: Store, saga_id: str) -> Reply:
    *_, cmd = await _commands(store, saga_id)
    bench = {"ok": True, "step": cmd.payload.get("step")}
    result = bench if cmd.service == "bench" else fake_result(cmd)
    return reply_to(cmd, "succeeded", result=result)


async def test_a_start_and_a_reply_alone_are_written_optimistically_once(
    shell: tuple[Store, Processor, Metrics],
) -> None:
    store, processor, metrics = shell
    msg = _noop("o1")
    assert (await processor.start_saga(msg)).kind == "applied"
    assert _count(metrics, "written") == 1
    assert (await processor.start_saga(msg)).kind == "duplicate"
    reply = await _succeed(store, "o1")
    applied = await processor.reply(reply)
    assert applied.kind == "applied"
    assert (await processor.reply(reply)).kind == "duplicate"
    assert _count(metrics, "written") == 2
    assert _count(metrics, "duplicate") == 2
    assert _count(metrics, "gave_way") == 0
    # The next step's command went out with the reply's write: the saga moved on.
    assert len(await _commands(store, "o1")) == 2


async def test_a_start_that_takes_a_lock_is_written_by_the_locking_path(
    shell: tuple[Store, Processor, Metrics],
) -> None:
    store, processor, metrics = shell
    msg = StartSaga(
        saga_type="vim-account.create", saga_id="v1", input=example("vim-account.create")
    )
    # Taking the lock is more statements, which must share one transaction with the saga row.
    assert (await processor.start_saga(msg)).kind == "applied"
    assert _count(metrics, "written") == 0
    assert _count(metrics, "gave_way") == 0
    assert len(await _commands(store, "v1")) == 1
    reply = await _succeed(store, "v1")
    assert (await processor.reply(reply)).kind == "applied"
    assert _count(metrics, "written") == 1


async def test_a_saga_that_moves_meanwhile_gives_way_and_the_reply_applies_once(
    shell: tuple[Store, Processor, Metrics], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, processor, metrics = shell
    msg = _noop("o2")
    assert (await processor.start_saga(msg)).kind == "applied"
    reply = await _succeed(store, "o2")
    assert store.hot is not None
    peek: Callable[..., Awaitable[Loaded]] = store.hot.peek

    async def peek_then_move(*args: Any) -> Loaded:
        # Another writer (a replica, a timer) commits between this read and the write.
        seen = await peek(*args)
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE sagas SET version = version + 1 WHERE id = 'o2'"))
        return seen

    monkeypatch.setattr(store.hot, "peek", peek_then_move)
    outcome = await processor.reply(reply)
    assert outcome.kind == "applied"
    assert _count(metrics, "gave_way") == 1
    monkeypatch.undo()
    # Applied by the locking path, once: the message is claimed, the next command is out.
    assert (await processor.reply(reply)).kind == "duplicate"
    assert len(await _commands(store, "o2")) == 2
    async with store.engine.connect() as conn:
        version = (
            await conn.execute(select(tables.sagas.c.version).where(tables.sagas.c.id == "o2"))
        ).scalar_one()
    # Started (1), moved by the other writer (2), the reply (3).
    assert version == 3
