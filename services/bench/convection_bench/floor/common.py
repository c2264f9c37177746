"""What the floor's two processes share: names, settings, and a node with counted I/O."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

from convection_bench.stats import Counters

SAGAS_EXCHANGE = "floor.sagas"
"""Direct exchange to the orchestrators: key `start` for new sagas, `reply` for step replies."""
COMMANDS_EXCHANGE = "floor.commands"
"""Direct exchange to the participants: key `noop`."""
EVENTS_EXCHANGE = "floor.events"
"""Topic exchange of completion events, key `saga.completed`, body `{"saga_id", "status"}`."""
START_KEY, REPLY_KEY, COMMAND_KEY, COMPLETED_KEY = "start", "reply", "noop", "saga.completed"
"""Routing keys: `start` and `reply` on floor.sagas, `noop` and `saga.completed` as above."""
STARTS_QUEUE = "floor.starts"
"""Queue of start messages `{"saga_id", "steps", "input"}` the orchestrators share."""
REPLIES_QUEUE = "floor.replies"
"""Queue of step replies the orchestrators share."""
COMMANDS_QUEUE = "floor.commands.noop"
"""Queue of step commands the participants share."""

# Without a delivery limit a message whose handler always fails would loop forever.
QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": 10}

Handler = Callable[[AbstractIncomingMessage, dict[str, Any]], Awaitable[None]]
"""Handles one decoded delivery; it acks the message itself, once the effect is durable."""

log = logging.getLogger("convection_bench.floor")


@dataclass(frozen=True)
class Settings:
    """How a floor process connects, and how much it does at once."""

    amqp_url: str
    db_url: str
    prefetch: int = 32
    pool_size: int = 8


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    # asyncpg's default reset is one more round trip, and transaction, per statement. Floor
    # sessions change no state (no SET, LISTEN or session locks), so there is nothing to undo.
    return None


def _decode(body: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


class Node:
    """One floor process: a counted connection pool, a confirming publisher, its consumers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        self._pool: asyncpg.Pool | None = None
        self._connection: AbstractConnection | None = None
        self._consuming: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[Any]] = set()

    async def open(self, ddl: str) -> None:
        """Connect to both servers, create the tables (`ddl`) and declare the topology."""
        dsn = self.settings.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=self.settings.pool_size, reset=_nothing_to_reset
        )
        async with self._pool.acquire() as conn, conn.transaction():
            # Several processes start at once; CREATE TABLE IF NOT EXISTS alone races.
            await conn.execute("SELECT pg_advisory_xact_lock(20240613)")
            await conn.execute(ddl)
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        publishing = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._consuming = await self._connection.channel(publisher_confirms=False)
        await self._consuming.set_qos(prefetch_count=self.settings.prefetch)
        for name, kind in (
            (SAGAS_EXCHANGE, aio_pika.ExchangeType.DIRECT),
            (COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT),
            (EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC),
        ):
            self._exchanges[name] = await publishing.declare_exchange(name, kind, durable=True)
        for queue, exchange, key in (
            (STARTS_QUEUE, SAGAS_EXCHANGE, START_KEY),
            (REPLIES_QUEUE, SAGAS_EXCHANGE, REPLY_KEY),
            (COMMANDS_QUEUE, COMMANDS_EXCHANGE, COMMAND_KEY),
        ):
            declared = await self._consuming.declare_queue(
                queue, durable=True, arguments=QUEUE_ARGUMENTS
            )
            await declared.bind(exchange, key)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement in a transaction of its own (autocommit) and return its rows."""
        assert self._pool is not None
        self.counters.db_statements += 1
        self.counters.db_transactions += 1
        rows: list[asyncpg.Record] = await self._pool.fetch(sql, *args)
        return rows

    async def publish(self, exchange: str, routing_key: str, body: str | bytes) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        Commands and replies are mandatory (an unroutable one is an error); events are not,
        since nobody need be listening to them.
        """
        message = aio_pika.Message(
            body.encode() if isinstance(body, str) else body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        mandatory = exchange != EVENTS_EXCHANGE
        await self._exchanges[exchange].publish(message, routing_key, mandatory=mandatory)
        self.counters.messages_published += 1

    async def consume(self, queue: str, handler: Handler) -> None:
        """Deliver `queue`'s messages to `handler`, at most `prefetch` at once."""
        assert self._consuming is not None
        declared = await self._consuming.declare_queue(queue, passive=True)

        async def deliver(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            self.counters.messages_consumed += 1
            try:
                body = _decode(message.body)
                if body is None:
                    log.error("dropping a message from %s that is not a JSON object", queue)
                    await message.reject(requeue=False)
                else:
                    await handler(message, body)
            except Exception:
                log.exception("handling a message from %s failed", queue)
                if not message.processed:
                    await message.nack(requeue=True)
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        self._consumers.append((declared, await declared.consume(deliver, no_ack=False)))

    async def serve(
        self, background: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        """Run until SIGTERM/SIGINT; then drain, write the stats file and disconnect."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        task = asyncio.create_task(background()) if background is not None else None
        log.info("ready")
        await stop.wait()
        for queue, tag in self._consumers:
            await queue.cancel(tag)
        # Let deliveries that arrived before the cancel start their tasks, then finish them.
        await asyncio.sleep(0)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.counters.write_if_asked()
        if self._connection is not None:
            await self._connection.close()
        if self._pool is not None:
            await self._pool.close()
