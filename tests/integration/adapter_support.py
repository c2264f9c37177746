"""Helpers for the participant and adapter tests: commands, a reply queue, a VIM simulator."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import Action, Command, Reply, decode, encode, vim
from contracts.topology import (
    COMMANDS_EXCHANGE,
    REPLIES_EXCHANGE,
    REPLY_ROUTING_KEY,
    Binding,
    Queue,
    Topology,
)
from convection.transport import Delivery, MemoryBroker, Transport, open_transport
from tests.environ import clean_environ
from tests.unit.world import OSM_TOPOLOGY
from vim_sim import VimSimSettings, VimSimulator

REPLIES_QUEUE = "test.replies"
"""A queue the tests bind to `convection.replies`, to read what the participants answer."""

STANDARD = OSM_TOPOLOGY
TOPOLOGY = Topology(
    exchanges=STANDARD.exchanges,
    queues=(
        *STANDARD.queues,
        Queue(REPLIES_QUEUE, (Binding(REPLIES_EXCHANGE, REPLY_ROUTING_KEY),)),
    ),
)
ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # a bound on hangs, never a timing assertion


def command(
    payload: Action,
    *,
    saga_id: str | None = None,
    step: str = "step",
    key: str | None = None,
    attempt: int = 1,
    compensation: bool = False,
    undoes_key: str | None = None,
    message_id: str | None = None,
) -> Command:
    """Build the command that carries `payload`, as the coordinator would."""
    saga_id = saga_id or uuid.uuid4().hex
    extra = {"message_id": message_id} if message_id else {}
    return Command(
        saga_id=saga_id,
        saga_type="test-saga",
        step=step,
        attempt=attempt,
        compensation=compensation,
        idempotency_key=key or f"{saga_id}/{step}",
        undoes_key=undoes_key,
        service=payload.SERVICE,
        action=payload.ACTION,
        payload=payload.model_dump(mode="json"),
        **extra,
    )


async def send(transport: Transport, cmd: Command) -> None:
    """Publish `cmd` to its service's command queue."""
    await transport.publish(COMMANDS_EXCHANGE, cmd.service, encode(cmd), message_id=cmd.message_id)


async def next_reply(
    transport: Transport, *, progress: bool = False, within: float = WAIT
) -> Reply:
    """Take the next reply from the test queue (progress replies are skipped unless asked)."""
    while True:
        delivery = await take(transport, REPLIES_QUEUE, within=within)
        await delivery.ack()
        reply = decode(delivery.body)
        assert isinstance(reply, Reply)
        if progress or reply.outcome != "progress":
            return reply


async def take(transport: Transport, queue: str, *, within: float = WAIT) -> Delivery:
    """Take the next message of `queue`, waiting for it up to `within` seconds."""
    async with asyncio.timeout(within):
        # basic.get has no "wait": poll, briefly.
        while (delivery := await transport.get(queue)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return delivery


def result_of(reply: Reply) -> dict[str, Any]:
    """Return the result of a succeeded reply (failing the test otherwise)."""
    assert reply.outcome == "succeeded" and reply.result is not None, reply
    return reply.result


async def call(transport: Transport, payload: Action, **fields: Any) -> Reply:
    """Send one command and return its final reply."""
    await send(transport, command(payload, **fields))
    return await next_reply(transport)


@asynccontextmanager
async def connected(amqp_url: str, broker: MemoryBroker | None = None) -> AsyncIterator[Transport]:
    """Yield a connected transport with the test reply queue declared."""
    async with open_transport(amqp_url, TOPOLOGY, memory_broker=broker) as transport:
        yield transport


@asynccontextmanager
async def running(runner: Any, *, transport: Transport, engine: AsyncEngine, **kw: Any) -> Any:
    """Run an adapter's `run(...)` in a task for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner(transport=transport, db_engine=engine, stop=stop, **kw))
    await asyncio.sleep(0.3)  # let it declare its tables and start consuming
    if task.done():
        task.result()
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


@asynccontextmanager
async def simulator(tmp_path: Path, **settings: Any) -> AsyncIterator[VimSimulator]:
    """Run a VIM simulator on SQLite in `tmp_path` (boots take 0.2 s)."""
    options: dict[str, Any] = {"boot_seconds": 0.2} | settings
    config = VimSimSettings(db_url=f"sqlite+aiosqlite:///{tmp_path}/sim.db", port=0, **options)
    async with VimSimulator(config) as sim:
        yield sim


def credentials(sim: VimSimulator, *, password: str = "osm") -> vim.VimCredentials:
    """Return the simulator's `osm` project credentials."""
    return vim.VimCredentials(
        auth_url=f"{sim.url}/identity/v3", username="osm", password=password, project="osm"
    )


async def admin(sim: VimSimulator, method: str, path: str, body: Any = None) -> Any:
    """Call the simulator's admin API and return its JSON."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{sim.url}{path}", json=body) as response,
    ):
        text = await response.text()
        assert response.status < 300, text
        return json.loads(text) if text else None


async def ledger(sim: VimSimulator, saga_id: str) -> list[dict[str, Any]]:
    """Return the simulator's ledger rows of one saga."""
    rows: list[dict[str, Any]] = await admin(sim, "GET", f"/admin/ledger?saga_id={saga_id}")
    return rows


def adapter_env(amqp_url: str, db_url: str, **extra: str) -> dict[str, str]:
    """Return the environment of an adapter subprocess."""
    env = clean_environ()
    env |= {"CONVECTION_AMQP_URL": amqp_url, "CONVECTION_DB_URL": db_url, **extra}
    return env


async def spawn(module: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start `python -m module` with its output in `log`."""
    handle = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env=env, stdout=handle, stderr=handle, cwd=ROOT
        )
    finally:
        handle.close()


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def wait_for_log(log: Path, text: str, *, within: float = WAIT) -> None:
    """Wait until `text` appears in `log` (another process writes it: poll)."""
    async with asyncio.timeout(within):
        while text not in await asyncio.to_thread(_read, log):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
