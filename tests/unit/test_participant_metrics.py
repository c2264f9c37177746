"""A participant's metrics, and a handler whose bug leaves no reply: dead-lettered, counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import vim
from contracts.topology import (
    COMMANDS_EXCHANGE,
    DELIVERY_LIMIT,
    ERROR_HEADER,
    HANDLER_CRASHED,
    REASON_HEADER,
    command_queue,
    dead_letter_queue,
)
from convection import Participant, ParticipantMetrics, StepContext, StepFailed, handles
from convection.db import make_engine
from convection.transport import MemoryBroker, Transport
from tests.integration.adapter_support import command, connected, next_reply, send, take

VIM_DEAD = dead_letter_queue(command_queue("vim"))


class Handlers:
    """`get-account` succeeds, fails, or (a bug) returns nothing, by account id."""

    def __init__(self) -> None:
        self.runs = 0

    @handles(vim.GetAccount)
    async def get(self, cmd: vim.GetAccount, ctx: StepContext) -> vim.AccountDetails:
        self.runs += 1
        if cmd.vim_account_id == "fails":
            raise StepFailed("no such account", code="unknown_account")
        if cmd.vim_account_id == "raises":
            raise RuntimeError("flaky")
        if cmd.vim_account_id == "forgets":
            forgotten: Any = None
            return forgotten  # type: ignore[no-any-return]
        creds = vim.VimCredentials(auth_url="http://x", username="u", password="p", project="p")
        return vim.AccountDetails(
            vim_account_id=cmd.vim_account_id, vim_type="openstack", credentials=creds
        )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    yield engine
    await engine.dispose()


def value(metrics: ParticipantMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return found or 0.0


async def test_outcomes_are_counted_and_a_handler_without_a_result_is_dead_lettered(
    engine: AsyncEngine,
) -> None:
    handlers = Handlers()
    metrics = ParticipantMetrics()
    async with connected("memory://", MemoryBroker()) as transport:
        participant = Participant(
            "vim", transport=transport, db_engine=engine, handlers=[handlers], metrics=metrics
        )
        await participant.start()
        try:
            await _drive(transport)
        finally:
            await participant.stop()
    action = vim.GetAccount.ACTION

    def commands(outcome: str, of: str = action) -> float:
        return value(
            metrics,
            "convection_participant_commands_total",
            service="vim",
            action=of,
            outcome=outcome,
        )

    assert commands("succeeded") == 1
    assert commands("duplicate") == 1
    assert commands("failed") == 1
    assert commands("retryable") == 1
    assert commands("invalid_payload") == 1
    assert commands("dead_lettered") == 1  # the handler that kept forgetting its result
    assert commands("dead_lettered", of="") == 1  # not JSON
    dead = "convection_participant_dead_letters_total"
    assert value(metrics, dead, service="vim", reason=HANDLER_CRASHED) == 1
    assert value(metrics, dead, service="vim", reason="invalid_json") == 1
    count = "convection_participant_command_duration_seconds_count"
    assert value(metrics, count, service="vim", action=action, outcome="succeeded") == 1
    assert value(metrics, count, service="vim", action=action, outcome="duplicate") == 0
    # The buggy handler ran once per delivery, up to the queue's last one.
    assert handlers.runs == 3 + DELIVERY_LIMIT + 1


async def _drive(transport: Transport) -> None:
    ok = command(vim.GetAccount(vim_account_id="acc-1"))
    await send(transport, ok)
    assert (await next_reply(transport)).outcome == "succeeded"
    await send(transport, ok)
    assert (await next_reply(transport)).outcome == "succeeded"  # from the store
    await send(transport, command(vim.GetAccount(vim_account_id="fails")))
    assert (await next_reply(transport)).outcome == "failed"
    await send(transport, command(vim.GetAccount(vim_account_id="raises")))
    assert (await next_reply(transport)).outcome == "retryable"
    bad = command(vim.GetAccount(vim_account_id="acc-2")).model_copy(update={"payload": {}})
    await send(transport, bad)
    assert (await next_reply(transport)).outcome == "failed"
    await transport.publish(COMMANDS_EXCHANGE, "vim", b"{oops", message_id="not-json")
    not_json = await take(transport, VIM_DEAD)
    await not_json.ack()
    assert not_json.headers[REASON_HEADER] == "invalid_json"

    forgets = command(vim.GetAccount(vim_account_id="forgets"))
    await send(transport, forgets)
    dead = await take(transport, VIM_DEAD)
    await dead.ack()
    assert dead.message_id == forgets.message_id
    assert dead.headers[REASON_HEADER] == HANDLER_CRASHED
    assert dead.headers[ERROR_HEADER] == (
        f"TypeError: the {vim.GetAccount.ACTION} handler returned NoneType, not AccountDetails"
    )
