"""Helpers of the transport contract tests: the test topology, a backend, an inbox, polling."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contracts.topology import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    Binding,
    Queue,
    Topology,
    command_queue,
    dead_letter_queue,
)
from convection.transport import Delivery, MemoryBroker, Transport, open_transport
from tests.unit.world import OSM_TOPOLOGY

STANDARD = OSM_TOPOLOGY
FAILURES_QUEUE = "test.events.failures"
COMPLETIONS_QUEUE = "test.events.completions"
SHORT_QUEUE = "test.short-limit"
SHORT_LIMIT = 2
TOPOLOGY = Topology(
    exchanges=STANDARD.exchanges,
    queues=(
        *STANDARD.queues,
        Queue(FAILURES_QUEUE, (Binding(EVENTS_EXCHANGE, "saga.#.failed"),)),
        Queue(COMPLETIONS_QUEUE, (Binding(EVENTS_EXCHANGE, "saga.*.completed"),)),
        Queue(SHORT_QUEUE, (Binding(COMMANDS_EXCHANGE, "short"),), delivery_limit=SHORT_LIMIT),
    ),
)
VIM_QUEUE = command_queue("vim")
VIM_DEAD = dead_letter_queue(VIM_QUEUE)
WAIT = 10.0  # generous: a bound on hangs, never a timing assertion


@dataclass(frozen=True)
class Backend:
    kind: str
    url: str
    broker: MemoryBroker | None

    def open(self, topology: Topology = TOPOLOGY, *, publish_timeout: float = 2.0) -> Transport:
        return open_transport(
            self.url, topology, memory_broker=self.broker, publish_timeout=publish_timeout
        )


class Inbox:
    """Collects the deliveries a handler saw."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[Delivery] = asyncio.Queue()

    async def ack(self, delivery: Delivery) -> None:
        await delivery.ack()
        await self.seen.put(delivery)

    async def keep(self, delivery: Delivery) -> None:
        await self.seen.put(delivery)  # and leave it unacked

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.seen.get(), WAIT)


async def publish_command(
    transport: Transport, body: bytes = b"{}", *, headers: dict[str, str] | None = None
) -> str:
    message_id = uuid.uuid4().hex
    await transport.publish(COMMANDS_EXCHANGE, "vim", body, message_id=message_id, headers=headers)
    return message_id


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    # Polling: the broker offers no event for "a message arrived in a queue".
    async with asyncio.timeout(WAIT):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def eventually_get(transport: Transport, queue: str) -> Delivery:
    taken: list[Delivery] = []

    async def got_one() -> bool:
        delivery = await transport.get(queue)
        if delivery is not None:
            taken.append(delivery)
        return bool(taken)

    await eventually(got_one)
    return taken[0]


async def eventually_depth(transport: Transport, queue: str, depth: int) -> None:
    async def reached() -> bool:
        return await transport.queue_depth(queue) == depth

    await eventually(reached)
