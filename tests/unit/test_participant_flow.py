"""The participant's flow on the embedded broker and SQLite: dedupe, outcomes, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import ErrorInfo, encode, reply_to, vim
from contracts.topology import (
    COMMANDS_EXCHANGE,
    DELIVERY_LIMIT,
    REASON_HEADER,
    command_queue,
    dead_letter_queue,
)
from convection import Participant, StepContext, StepFailed, StepRetryable, handles
from convection.db import make_engine, trouble
from convection.outage import Outage
from convection.participant import final_reply_id
from convection.transport import MemoryBroker, Transport
from tests.integration.adapter_support import (
    REPLIES_QUEUE,
    command,
    connected,
    next_reply,
    result_of,
    send,
    take,
)

VIM_DEAD = dead_letter_queue(command_queue("vim"))


class Handlers:
    """Test handlers: `get-account` counts runs and fails on demand."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.fail: Exception | None = None
        self.delay = 0.0
        self.forward_results: list[object] = []
        self.outages: list[Exception] = []

    @handles(vim.GetAccount)
    async def get(self, cmd: vim.GetAccount, ctx: StepContext) -> vim.AccountDetails:
        self.runs.append(ctx.idempotency_key)
        await ctx.progress("working", 50)
        await asyncio.sleep(self.delay)
        if self.outages:
            raise self.outages.pop()
        if self.fail is not None:
            raise self.fail
        creds = vim.VimCredentials(auth_url="http://x", username="u", password="p", project="p")
        return vim.AccountDetails(
            vim_account_id=cmd.vim_account_id, vim_type="openstack", credentials=creds
        )

    @handles(vim.DeregisterAccount)
    async def deregister(
        self, cmd: vim.DeregisterAccount, ctx: StepContext
    ) -> vim.AccountDeregistered:
        self.runs.append(ctx.idempotency_key)
        self.forward_results.append(ctx.forward_result)
        return vim.AccountDeregistered(vim_account_id=cmd.vim_account_id, existed=True)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    yield engine
    await engine.dispose()


@pytest.fixture
async def setup(engine: AsyncEngine) -> AsyncIterator[tuple[Transport, Handlers]]:
    handlers = Handlers()
    async with connected("memory://", MemoryBroker()) as transport:
        participant = Participant("vim", transport=transport, db_engine=engine, handlers=[handlers])
        await participant.start()
        yield transport, handlers
        await participant.stop()


GET = vim.GetAccount(vim_account_id="acc-1")


async def test_succeeds_with_progress_first(setup: tuple[Transport, Handlers]) -> None:
    transport, _ = setup
    cmd = command(GET)
    await send(transport, cmd)
    progress = await next_reply(transport, progress=True)
    assert progress.outcome == "progress" and progress.progress.percent == 50
    reply = await next_reply(transport)
    assert reply.outcome == "succeeded" and reply.command_id == cmd.message_id
    assert result_of(reply)["vim_account_id"] == "acc-1"
    assert reply.message_id == final_reply_id(cmd.message_id)


async def test_duplicate_and_retry_are_answered_from_the_store(
    setup: tuple[Transport, Handlers],
) -> None:
    transport, handlers = setup
    cmd = command(GET)
    await send(transport, cmd)
    await send(transport, cmd)  # the same message twice
    retry = cmd.model_copy(update={"message_id": "retry-1", "attempt": 2})
    await send(transport, retry)
    first, second, third = [await next_reply(transport) for _ in range(3)]
    assert handlers.runs == [cmd.idempotency_key]
    assert first.model_dump(exclude={"sent_at"}) == second.model_dump(exclude={"sent_at"})
    assert third.command_id == "retry-1" and third.attempt == 2
    assert third.result == first.result


async def test_concurrent_duplicates_run_once(setup: tuple[Transport, Handlers]) -> None:
    transport, handlers = setup
    handlers.delay = 0.3
    cmd = command(GET)
    await asyncio.gather(send(transport, cmd), send(transport, cmd))
    a, b = await next_reply(transport), await next_reply(transport)
    assert handlers.runs == [cmd.idempotency_key]
    assert a.outcome == b.outcome == "succeeded"


@pytest.mark.parametrize(
    ("error", "outcome", "code", "uncertain"),
    [
        (
            StepFailed("no such account", code="unknown_vim_account"),
            "failed",
            "unknown_vim_account",
            False,
        ),
        (StepFailed("clean-up failed", code="partial", uncertain=True), "failed", "partial", True),
        (StepRetryable("later", code="busy"), "retryable", "busy", False),
        (StepRetryable("lost", code="timeout", uncertain=True), "retryable", "timeout", True),
        # A bug or an unexpected error may strike after an effect: never certain.
        (RuntimeError("boom"), "retryable", "exception", True),
    ],
)
async def test_exceptions_map_to_outcomes(
    setup: tuple[Transport, Handlers], error: Exception, outcome: str, code: str, uncertain: bool
) -> None:
    transport, handlers = setup
    handlers.fail = error
    cmd = command(GET)
    await send(transport, cmd)
    reply = await next_reply(transport)
    assert (reply.outcome, reply.error.code, reply.uncertain) == (outcome, code, uncertain)
    handlers.fail = None
    await send(transport, cmd.model_copy(update={"message_id": "again"}))
    again = await next_reply(transport)
    # A failure is final and stored (its uncertainty too); a retryable one is not, so the
    # retry runs the handler.
    assert again.outcome == ("failed" if outcome == "failed" else "succeeded")
    assert again.uncertain == (outcome == "failed" and uncertain)
    assert len(handlers.runs) == (1 if outcome == "failed" else 2)


async def test_invalid_payload_fails_without_running(setup: tuple[Transport, Handlers]) -> None:
    transport, handlers = setup
    cmd = command(GET).model_copy(update={"payload": {"vim_account_id": ""}})
    await send(transport, cmd)
    reply = await next_reply(transport)
    assert reply.outcome == "failed" and reply.error.code == "invalid_payload"
    assert handlers.runs == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"type": "nope"}', "unknown_type"),
        (
            reply_to(command(GET), "retryable", error=ErrorInfo(code="x", message="y"))
            .model_dump_json()
            .encode(),
            "wrong_message",
        ),
        (
            command(GET).model_copy(update={"service": "ro"}).model_dump_json().encode(),
            "wrong_service",
        ),
        (
            command(GET)
            .model_copy(update={"action": "vim.validate-credentials"})
            .model_dump_json()
            .encode(),
            "unknown_action",
        ),
    ],
)
async def test_bad_input_is_dead_lettered(
    setup: tuple[Transport, Handlers], body: bytes, reason: str
) -> None:
    transport, _ = setup
    await transport.publish(COMMANDS_EXCHANGE, "vim", body, message_id="bad-1")
    dead = await take(transport, VIM_DEAD)
    assert dead.headers[REASON_HEADER] == reason
    await dead.ack()


async def test_compensation_sees_forward_result_and_leaves_a_tombstone(
    setup: tuple[Transport, Handlers],
) -> None:
    transport, handlers = setup
    forward = command(GET, key="saga-x/get")
    await send(transport, forward)
    done = await next_reply(transport)
    undo = command(
        vim.DeregisterAccount(vim_account_id="acc-1"),
        key="saga-x/get/undo",
        compensation=True,
        undoes_key="saga-x/get",
    )
    await send(transport, undo)
    assert (await next_reply(transport)).outcome == "succeeded"
    assert handlers.forward_results == [done.result]

    # A forward command that arrives after its compensation succeeded creates nothing.
    late_undo = command(
        vim.DeregisterAccount(vim_account_id="acc-2"),
        key="saga-y/get/undo",
        compensation=True,
        undoes_key="saga-y/get",
    )
    await send(transport, late_undo)
    assert (await next_reply(transport)).outcome == "succeeded"
    await send(transport, command(GET, key="saga-y/get"))
    late = await next_reply(transport)
    assert late.outcome == "failed" and late.error.code == "already_compensated"
    assert "saga-y/get" not in handlers.runs
    assert handlers.forward_results[-1] is None


def test_handles_rejects_sync_functions_and_other_services(engine: AsyncEngine) -> None:
    with pytest.raises(TypeError):

        @handles(vim.GetAccount)  # type: ignore[type-var]
        def sync(self: object, cmd: object, ctx: object) -> None:
            pass

    with pytest.raises(ValueError, match="not 'ro'"):
        Participant("ro", transport=None, db_engine=engine, handlers=[Handlers()])
    with pytest.raises(ValueError, match="unknown failpoint"):
        Participant("vim", transport=None, db_engine=engine, handlers=[Handlers()], failpoint="x")


async def test_reply_continues_the_commands_trace(setup: tuple[Transport, Handlers]) -> None:
    transport, _ = setup
    cmd = command(GET)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await transport.publish(
        COMMANDS_EXCHANGE,
        "vim",
        encode(cmd),
        message_id=cmd.message_id,
        headers={"traceparent": parent},
    )
    for _ in range(2):  # the progress reply, then the final one
        delivery = await take(transport, REPLIES_QUEUE)
        await delivery.ack()
        assert delivery.headers["traceparent"].split("-")[1] == parent.split("-")[1]


async def test_a_database_outage_holds_the_delivery_until_it_ends(engine: AsyncEngine) -> None:
    # The handler's database drops its connection more often than the queue's delivery limit,
    # then answers: the command is kept in hand (no retryable reply, no dead letter, no
    # delivery spent: requeued instead, it would be dead-lettered) and then succeeds.
    handlers = Handlers()
    handlers.outages = [
        DBAPIError("SELECT 1", None, OSError("connection reset"), connection_invalidated=True)
        for _ in range(DELIVERY_LIMIT + 2)
    ]
    async with connected("memory://", MemoryBroker()) as transport:
        participant = Participant("vim", transport=transport, db_engine=engine, handlers=[handlers])
        # The backoff shortened, so a dozen outages take a moment, not minutes.
        participant.database = Outage(
            "vim's database", lambda exc: trouble(exc) is not None, initial=0.005, maximum=0.01
        )
        await participant.start()
        try:
            cmd = command(GET)
            await send(transport, cmd)
            reply = await next_reply(transport)
            assert reply.outcome == "succeeded", reply
            assert handlers.runs == [cmd.idempotency_key] * (DELIVERY_LIMIT + 3)
            assert await transport.get(VIM_DEAD) is None
        finally:
            await participant.stop()


async def test_a_command_from_another_broker_user_than_the_coordinator_is_refused(
    engine: AsyncEngine,
) -> None:
    handlers = Handlers()
    broker = MemoryBroker()
    async with (
        connected("memory://convection-vim@", broker) as own,
        connected("memory://convection-coordinator@", broker) as coordinator,
        connected("memory://intruder@", broker) as intruder,
    ):
        participant = Participant(
            "vim",
            transport=own,
            db_engine=engine,
            handlers=[handlers],
            coordinator_user="convection-coordinator",
        )
        await participant.start()
        try:
            forged = command(GET)
            await send(intruder, forged)
            dead = await take(own, VIM_DEAD)
            assert dead.headers[REASON_HEADER] == "forged"
            assert dead.message_id == forged.message_id
            genuine = command(GET)
            await send(coordinator, genuine)
            reply = await next_reply(own)
            assert reply.command_id == genuine.message_id and reply.outcome == "succeeded"
            assert reply.uncertain is False
            assert handlers.runs == [genuine.idempotency_key], "the forged one never ran"
        finally:
            await participant.stop()
