"""The harness's own broker connection: it publishes the starts and hears the completions."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.abc import AbstractIncomingMessage as Incoming

from convection_bench.system import Completion, System


class Broker:
    """The harness's own connection: it publishes starts and hears completion events."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: AbstractConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._waiting: dict[str, asyncio.Future[tuple[Completion, float]]] = {}
        self.last_event = time.monotonic()

    async def __aenter__(self) -> Broker:
        self._connection = await aio_pika.connect(self._url, timeout=10)
        self._publishing = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, exchange: str, routing_key: str, body: bytes) -> None:
        """Publish persistent and mandatory, and wait for the broker's confirm."""
        assert self._publishing is not None
        target = self._exchanges.get(exchange)
        if target is None:
            target = await self._publishing.get_exchange(exchange, ensure=False)
            self._exchanges[exchange] = target
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await target.publish(message, routing_key, mandatory=True)

    async def consumers(self, queue: str) -> int:
        """Return how many consumers `queue` has (0 while it does not exist)."""
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0
        finally:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await channel.close()
        return declared.declaration_result.consumer_count or 0

    async def listen(self, system: System) -> None:
        """Bind a private queue to the system's events and resolve the sagas they end."""
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(
            system.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        for key in system.events_routing_keys:
            await queue.bind(exchange, key)

        async def on_event(message: Incoming) -> None:
            received = time.perf_counter()
            try:
                completion = system.parse_event(message.body)
            except (ValueError, KeyError, TypeError):
                return
            if completion is None:
                return
            self.last_event = time.monotonic()
            waiter = self._waiting.pop(completion.saga_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result((completion, received))

        await queue.consume(on_event, no_ack=True)

    def expect(self, saga_id: str) -> asyncio.Future[tuple[Completion, float]]:
        """Return a future for the saga's completion and when it was received."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[saga_id] = waiter
        return waiter
