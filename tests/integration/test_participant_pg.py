"""The participant's store on PostgreSQL: a key's handler runs once across instances, and the
stored outcomes, forward results and tombstones read by its one statement after the lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from contracts import vim
from convection import Participant, StepContext, handles, participant_sql, pg_driver
from convection.db import make_engine
from convection.participant_store import ReplyStore, StoredReply
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


async def test_the_claim_reads_a_few_rows_however_its_plan_was_made(
    fresh_pg_url: str,
) -> None:
    # PL/pgSQL keeps the plan PostgreSQL chose for the claim's read while the table was empty;
    # with `idempotency_key IN (...)` that plan scanned all of the service's rows at every
    # command once the table had grown.
    engine = make_engine(fresh_pg_url, pool_size=1)
    store = ReplyStore(engine, "echo")
    await store.create_tables()
    claim = participant_sql.CLAIM_SQL
    try:
        async with engine.connect() as conn:
            for _ in range(8):  # past the five custom plans before a generic one
                await pg_driver.fetch_alone(conn, claim, ("echo", "k", "k", "k", 1))
                await pg_driver.fetch_alone(conn, participant_sql.UNLOCK_SQL, (1,))
            await conn.execute(
                text(
                    "INSERT INTO convection_participant_replies (service, idempotency_key, "
                    "outcome, result, saga_id, step, created) SELECT 'echo', 'k' || g, "
                    "'succeeded', '{}', 's', 'st', now() FROM generate_series(1, 3000) g"
                )
            )
            await conn.commit()
            counts = (
                "SELECT seq_scan, seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables "
                "WHERE relname = 'convection_participant_replies'"
            )
            before = (await conn.execute(text(counts))).one()
            rows = await pg_driver.fetch(conn, claim, ("echo", "k7", "k9", "k7", 1))
            after = (await conn.execute(text(counts))).one()
            await conn.rollback()
            await pg_driver.fetch_alone(conn, participant_sql.UNLOCK_SQL, (1,))
        assert sorted(r["idempotency_key"] for r in rows) == ["k7", "k9"]
        assert after.seq_scan == before.seq_scan, "the claim scanned the table"
        fetched = after.idx_tup_fetch - before.idx_tup_fetch
        assert fetched < 10, f"the claim fetched {fetched} rows: a scan, not a key lookup"
    finally:
        await engine.dispose()


async def test_a_claim_holds_its_key_until_settled_and_leaves_no_lock(fresh_pg_url: str) -> None:
    engine = make_engine(fresh_pg_url)
    # Two stores: two processes as far as the advisory lock knows (each has its own asyncio
    # locks, so only PostgreSQL's lock can make the second wait).
    first, second = ReplyStore(engine, "echo"), ReplyStore(engine, "echo")
    await first.create_tables()
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    order: list[str] = []

    async def held() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text(locks))).scalar_one())

    async def claim_again() -> None:
        async with second.claim("k") as slot:
            recall = await slot.recall("k")
            order.append(f"second saw {recall.stored.outcome if recall.stored else None}")

    async def claim_and_fail() -> None:
        async with second.claim("k2") as slot:
            await slot.recall("k2")
            raise ZeroDivisionError

    try:
        async with first.claim("k") as slot:
            assert (await slot.recall("k")).stored is None
            assert await held() == 1
            waiting = asyncio.create_task(claim_again())
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the second claim did not wait for the lock"
            stored = StoredReply("succeeded", {"x": 1}, None)
            await slot.save("k", stored, undoes_key=None, saga_id="s", step="st")
            order.append("first settled")
        await waiting
        assert order == ["first settled", "second saw succeeded"]
        assert await held() == 0
        # A claim that stores nothing, and one whose body fails, leave no lock behind either.
        async with second.claim("k") as slot:
            await slot.recall("k")
        assert await held() == 0
        with pytest.raises(ZeroDivisionError):
            await claim_and_fail()
        assert await held() == 0
    finally:
        await engine.dispose()


async def test_an_unlock_that_finds_no_lock_fails_and_names_the_pooling(fresh_pg_url: str) -> None:
    # What PgBouncer in transaction mode would do: the settle lands on a session that never
    # took the lock. The outcome is committed all the same; the failure says what to change.
    engine = make_engine(fresh_pg_url)
    store = ReplyStore(engine, "echo")
    await store.create_tables()
    await store.create_tables()  # a second start finds the routines and leaves them be
    try:
        async with engine.connect() as conn:
            when = datetime.now(UTC)
            args = ("echo", "k", None, "succeeded", "{}", None, "s", "st", when, 42)
            with pytest.raises(Exception, match="not held by this database session") as caught:
                await pg_driver.fetch_alone(conn, participant_sql.SETTLE_SQL, args)
            assert "session" in str(getattr(caught.value, "hint", ""))
            await conn.invalidate()
        async with engine.connect() as conn:
            stored = await conn.execute(text("SELECT count(*) FROM convection_participant_replies"))
            assert stored.scalar_one() == 1
        async with store.claim("k2") as slot:
            await slot.recall("k2")
            with pytest.raises(RuntimeError, match="twice"):
                await slot.recall("k2")
    finally:
        await engine.dispose()
