"""The participant's store on PostgreSQL: a key's handler runs once across instances, and the
stored outcomes, forward results and tombstones read by its one statement after the lock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from contracts import vim
from convection import Participant, StepContext, handles, participant_store, pg_driver
from convection.db import make_engine
from convection.participant_store import ReplyStore
from convection.transport import MemoryBroker, Transport
from tests.integration.adapter_support import command, connected, next_reply, send
from tests.unit import test_participant_flow as flow

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]


class Slow:
    """Counts runs across instances; slow enough that duplicates overlap."""

    def __init__(self, runs: list[str]) -> None:
        self.runs = runs

    @handles(vim.DeregisterAccount)
    async def deregister(
        self, cmd: vim.DeregisterAccount, ctx: StepContext
    ) -> vim.AccountDeregistered:
        self.runs.append(ctx.idempotency_key)
        await asyncio.sleep(0.5)
        return vim.AccountDeregistered(vim_account_id=cmd.vim_account_id, existed=True)


async def test_concurrent_duplicates_on_two_instances_run_once(
    fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    runs: list[str] = []
    engines = [make_engine(fresh_pg_url), make_engine(fresh_pg_url)]
    async with (
        connected(fresh_amqp_url) as one,
        connected(fresh_amqp_url) as two,
    ):
        participants = [
            Participant("vim", transport=t, db_engine=e, handlers=[Slow(runs)], prefetch=1)
            for t, e in zip((one, two), engines, strict=True)
        ]
        for participant in participants:
            await participant.start()
        cmds = [command(vim.DeregisterAccount(vim_account_id=f"a{i}")) for i in range(3)]
        for cmd in cmds:
            # Prefetch 1 on each instance: the two copies go to different instances at once.
            await send(one, cmd)
            await send(one, cmd)
        got = [await next_reply(one) for _ in range(6)]
        for participant in participants:
            await participant.stop()
    for engine in engines:
        await engine.dispose()
    assert sorted(runs) == sorted(c.idempotency_key for c in cmds)
    assert {r.outcome for r in got} == {"succeeded"}
    assert sorted(r.command_id for r in got) == sorted(2 * [c.message_id for c in cmds])


@pytest.fixture
async def on_postgres(fresh_pg_url: str) -> AsyncIterator[tuple[Transport, flow.Handlers]]:
    engine = make_engine(fresh_pg_url)
    handlers = flow.Handlers()
    async with connected("memory://", MemoryBroker()) as transport:
        participant = Participant("vim", transport=transport, db_engine=engine, handlers=[handlers])
        await participant.start()
        yield transport, handlers
        await participant.stop()
    await engine.dispose()


async def test_duplicates_are_answered_from_the_store_on_postgresql(
    on_postgres: tuple[Transport, flow.Handlers],
) -> None:
    await flow.test_duplicate_and_retry_are_answered_from_the_store(on_postgres)


async def test_a_compensation_sees_its_forward_result_and_leaves_a_tombstone_on_postgresql(
    on_postgres: tuple[Transport, flow.Handlers],
) -> None:
    await flow.test_compensation_sees_forward_result_and_leaves_a_tombstone(on_postgres)


async def test_the_recall_reads_a_few_buffers_however_its_plan_was_made(
    fresh_pg_url: str,
) -> None:
    # Prepared once per connection, the statement keeps the plan PostgreSQL chose while the
    # table was empty; with `idempotency_key IN (...)` that plan scanned all of the service's
    # rows at every command once the table had grown.
    engine = make_engine(fresh_pg_url, pool_size=1)
    store = ReplyStore(engine, "echo")
    await store.create_tables()
    try:
        async with engine.begin() as conn:
            for _ in range(8):  # past the five custom plans before a generic one
                await pg_driver.fetch(conn, participant_store._RECALL_SQL, ("echo", "k", "k", "k"))
            await conn.execute(
                text(
                    "INSERT INTO convection_participant_replies (service, idempotency_key, "
                    "outcome, result, saga_id, step, created) SELECT 'echo', 'k' || g, "
                    "'succeeded', '{}', 's', 'st', now() FROM generate_series(1, 3000) g"
                )
            )
            [named] = await pg_driver.fetch(
                conn,
                "SELECT name FROM pg_prepared_statements WHERE statement = $1",
                (participant_store._RECALL_SQL,),
            )
            plan = await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {named['name']}"
                "('echo', 'k7', 'k9', 'k7')"
            )
            [[document]] = plan.fetchall()
        parsed = json.loads(document) if isinstance(document, str) else document
        buffers = parsed[0]["Plan"]["Shared Hit Blocks"]
        assert buffers < 30, f"the recall read {buffers} buffers: a scan, not a key lookup"
    finally:
        await engine.dispose()
