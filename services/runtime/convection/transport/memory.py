"""The in-process transport: `MemoryTransport` over a shared `MemoryBroker`.

It gives the components of one process (the embedded demo, the tests) the
semantics of `AmqpTransport` without a server: the same routing, confirms
(`Unroutable`), prefetch, manual acks, redelivery counts and dead letters. The
broker is an object passed explicitly to every transport; there is no registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from contracts.topology import Topology
from convection.transport.base import (
    DEFAULT_CONTENT_TYPE,
    Consumer,
    Delivery,
    Handler,
    Transport,
    TransportClosed,
    run_handler,
)
from convection.transport.headers import DELIVERY_COUNT_HEADER, decode_headers
from convection.transport.memory_broker import Holder, MemoryBroker, StoredMessage

__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryDelivery", "MemoryTransport"]

logger = logging.getLogger(__name__)


class MemoryDelivery(Delivery):
    """A delivery from the in-process broker."""

    def __init__(
        self,
        broker: MemoryBroker,
        holder: Holder,
        tag: int,
        message: StoredMessage,
        *,
        queue: str,
        transport: Transport,
    ) -> None:
        raw: dict[str, object] = {**message.headers, DELIVERY_COUNT_HEADER: message.delivery_count}
        super().__init__(
            body=message.body,
            message_id=message.message_id,
            exchange=message.exchange,
            routing_key=message.routing_key,
            queue=queue,
            headers=decode_headers(raw),
            redelivered=message.redelivered,
            delivery_count=message.delivery_count,
            content_type=message.content_type,
            transport=transport,
            delivery_limit=broker._delivery_limit(queue),
            user_id=message.user_id,
        )
        self._broker = broker
        self._holder = holder
        self._tag = tag

    async def _ack(self) -> None:
        if not self._broker._settle(self.queue, self._tag, self._holder, requeue=False):
            # As with a dead AMQP channel: the delivery went back to the queue.
            logger.warning("cannot ack %r, its consumer stopped; it will be redelivered", self)

    async def _requeue(self) -> None:
        if not self._broker._settle(self.queue, self._tag, self._holder, requeue=True):
            logger.warning("cannot requeue %r, its consumer stopped; it was requeued", self)


class MemoryConsumer(Consumer):
    """A consumer of the in-process broker; each delivery's handler runs in its own task."""

    def __init__(
        self,
        broker: MemoryBroker,
        transport: MemoryTransport,
        queue: str,
        handler: Handler,
        *,
        prefetch: int,
    ) -> None:
        self._broker = broker
        self._transport = transport
        self._queue = queue
        self._handler = handler
        self._holder = Holder(prefetch)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def queue(self) -> str:
        """The queue this consumer takes deliveries from."""
        return self._queue

    @property
    def holder(self) -> Holder:
        """The holder of this consumer's unacked deliveries (for the broker)."""
        return self._holder

    def deliver(self, tag: int, message: StoredMessage) -> None:
        """Start handling one delivery in a task of its own (called by the broker)."""
        delivery = MemoryDelivery(
            self._broker, self._holder, tag, message, queue=self._queue, transport=self._transport
        )
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, delivery: MemoryDelivery) -> None:
        failure = await run_handler(self._handler, delivery)
        if failure is not None:
            self._broker._record_failure(self._queue, failure)

    async def stop(self) -> None:
        """Take no new deliveries, wait for the handlers in flight, requeue what is unacked."""
        if self._stopped:
            return
        self._stopped = True
        self._holder.active = False
        self._broker._unsubscribe(self)
        # A handler may stop its own consumer: it must not wait for itself.
        current = asyncio.current_task()
        pending = {task for task in self._tasks if task is not current}
        if pending:
            await asyncio.wait(pending)
        self._broker._release(self._holder)
        self._transport._forget(self)


class MemoryTransport(Transport):
    """The transport over a `MemoryBroker`, with the semantics of `AmqpTransport`."""

    def __init__(
        self, broker: MemoryBroker, topology: Topology, *, user: str | None = None
    ) -> None:
        self._broker = broker
        self.user = user
        self._topology = topology
        self._connected = False
        self._closing = False
        self._getter = Holder()
        self._consumers: set[MemoryConsumer] = set()

    async def connect(self) -> None:
        """Declare the topology on the broker; declaring it again is harmless."""
        self._broker._declare(self._topology)
        if not self._connected:
            self._getter = Holder()
            self._connected = True

    async def close(self) -> None:
        """Stop every consumer (waiting for its handlers) and requeue unsettled gets."""
        if not self._connected or self._closing:
            return
        self._closing = True
        try:
            # Still connected meanwhile: a handler in flight may publish its reply.
            for consumer in list(self._consumers):
                await consumer.stop()
        finally:
            self._connected = self._closing = False
            self._broker._release(self._getter)

    def _forget(self, consumer: MemoryConsumer) -> None:
        self._consumers.discard(consumer)

    def _require(self, *, new_work: bool = False) -> None:
        # While closing, handlers in flight still publish and settle; nothing new starts.
        if not self._connected or (new_work and self._closing):
            raise TransportClosed("the memory transport is not connected")

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
        mandatory: bool = True,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> None:
        """Route the message to its queues at once; unroutable and mandatory raises."""
        self._require()
        message = StoredMessage(
            body=bytes(body),
            message_id=message_id,
            headers=dict(headers or {}),
            content_type=content_type,
            exchange=exchange,
            routing_key=routing_key,
            user_id=self.user,
        )
        self._broker._publish(message, mandatory=mandatory)
        # A real publish waits for the broker: yield, so callers see the same interleaving.
        await asyncio.sleep(0)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Start handing the deliveries of `queue` to `handler`, `prefetch` unacked at most."""
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._require(new_work=True)
        consumer = MemoryConsumer(self._broker, self, queue, handler, prefetch=prefetch)
        self._broker._subscribe(consumer)
        self._consumers.add(consumer)
        return consumer

    async def get(self, queue: str) -> Delivery | None:
        """Take one message from `queue`, or None; the caller settles it."""
        self._require()
        taken = self._broker._get(queue, self._getter)
        if taken is None:
            return None
        tag, message = taken
        return MemoryDelivery(self._broker, self._getter, tag, message, queue=queue, transport=self)

    async def queue_depth(self, queue: str) -> int:
        """Count the ready messages of `queue` (unacked ones are not counted)."""
        self._require()
        return len(self._broker._queue(queue).ready)

    async def queue_consumers(self, queue: str) -> int | None:
        """Count the consumers of `queue`, of every transport on this broker."""
        self._require()
        return len(self._broker._queue(queue).consumers)

    async def ping(self) -> bool:
        """Report whether the transport is connected."""
        return self._connected
