"""The participant's store on PostgreSQL: a key's handler runs once across instances, and the
stored outcomes, forward results and tombstones read by its one statement after the lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from contracts import vim
from convection import Participant, StepContext, handles
from convection.db import make_engine
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
