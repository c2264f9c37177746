"""The vim-adapter over RabbitMQ and PostgreSQL, against an embedded VIM simulator."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import vim_adapter
from contracts import vim
from convection.db import make_engine
from convection.transport import Transport
from tests.integration.adapter_support import (
    admin,
    call,
    connected,
    credentials,
    result_of,
    running,
    simulator,
)
from vim_sim import VimSimulator

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]


@pytest.fixture
async def env(
    tmp_path: Path, fresh_amqp_url: str, pg_url: str
) -> AsyncIterator[tuple[Transport, VimSimulator]]:
    engine = make_engine(pg_url)
    async with (
        simulator(tmp_path) as sim,
        connected(fresh_amqp_url) as transport,
        running(vim_adapter.run, transport=transport, engine=engine),
    ):
        yield transport, sim
    await engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_validate_credentials(env: tuple[Transport, VimSimulator]) -> None:
    transport, sim = env
    good = await call(transport, vim.ValidateCredentials(credentials=credentials(sim)))
    assert good.outcome == "succeeded" and result_of(good)["project_id"]

    bad = await call(transport, vim.ValidateCredentials(credentials=credentials(sim, password="x")))
    assert bad.outcome == "failed" and bad.error.code == "invalid_credentials"
    assert bad.error.message == "The request you have made requires authentication."

    nowhere = credentials(sim).model_copy(
        update={"auth_url": f"http://127.0.0.1:{_free_port()}/identity/v3"}
    )
    down = await call(transport, vim.ValidateCredentials(credentials=nowhere))
    # Nothing answers: down for now, so retryable (issue 12), never a business failure.
    assert down.outcome == "retryable" and down.error.code == "vim_unreachable"

    wrong_path = credentials(sim).model_copy(update={"auth_url": f"{sim.url}/nothing/v3"})
    lost = await call(transport, vim.ValidateCredentials(credentials=wrong_path))
    assert lost.outcome == "failed" and lost.error.code == "vim_misconfigured"

    await admin(sim, "POST", "/admin/faults", {"fail_next": 1, "status": 503})
    busy = await call(transport, vim.ValidateCredentials(credentials=credentials(sim)))
    assert busy.outcome == "retryable" and busy.error.code == "vim_unavailable"


async def test_register_get_deregister(env: tuple[Transport, VimSimulator]) -> None:
    transport, sim = env
    spec = vim.VimAccountSpec(vim_account_id="acc-int-1", name="site", credentials=credentials(sim))
    registered = await call(transport, vim.RegisterAccount(account=spec))
    assert registered.outcome == "succeeded"
    assert result_of(registered)["vim_account_id"] == "acc-int-1"

    details = await call(transport, vim.GetAccount(vim_account_id="acc-int-1"))
    assert details.outcome == "succeeded"
    assert result_of(details)["credentials"] == spec.credentials.model_dump(mode="json")

    gone = await call(transport, vim.DeregisterAccount(vim_account_id="acc-int-1"))
    assert gone.result == {"vim_account_id": "acc-int-1", "existed": True}
    missing = await call(transport, vim.GetAccount(vim_account_id="acc-int-1"))
    assert missing.outcome == "failed" and missing.error.code == "unknown_vim_account"

    rejected = spec.model_copy(update={"credentials": credentials(sim, password="nope")})
    refused = await call(transport, vim.RegisterAccount(account=rejected))
    assert refused.outcome == "failed" and refused.error.code == "invalid_credentials"
