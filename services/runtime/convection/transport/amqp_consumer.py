"""Consuming from RabbitMQ: a delivery settled on its own channel, and a consumer per channel.

Each consumer has a channel of its own, so its prefetch limit and its delivery
tags are its own. Delivery tags die with their channel: after a reconnect an
ack of an earlier delivery fails, is logged, and the broker's redelivery covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from convection.transport.base import Consumer, Delivery, Handler, Transport, run_handler
from convection.transport.headers import decode_headers, delivery_count

logger = logging.getLogger(__name__)

CHANNEL_GONE = (AMQPError, ChannelInvalidStateError, ConnectionError)
"""What aio-pika and aiormq raise when a channel or its connection is gone."""


class AmqpDelivery(Delivery):
    """A delivery from RabbitMQ, settled on the channel that delivered it."""

    def __init__(
        self,
        message: AbstractIncomingMessage,
        *,
        queue: str,
        transport: Transport,
        delivery_limit: int | None = None,
    ) -> None:
        super().__init__(
            body=message.body,
            message_id=message.message_id,
            exchange=message.exchange or "",
            routing_key=message.routing_key or "",
            queue=queue,
            headers=decode_headers(message.headers),
            redelivered=bool(message.redelivered),
            delivery_count=delivery_count(message.headers),
            content_type=message.content_type,
            transport=transport,
            delivery_limit=delivery_limit,
            user_id=message.user_id,
        )
        self._message = message

    async def _ack(self) -> None:
        try:
            await self._message.ack()
        except CHANNEL_GONE as exc:
            # Delivery tags die with their channel; the broker requeued the message
            # when the channel closed, so it will be redelivered (and deduplicated).
            logger.warning(
                "cannot ack %r, its channel is gone (%r); it will be redelivered", self, exc
            )

    async def _requeue(self) -> None:
        try:
            await self._message.nack(requeue=True)
        except CHANNEL_GONE as exc:
            logger.warning(
                "cannot requeue %r, its channel is gone (%r); the broker requeued it", self, exc
            )


class AmqpConsumer(Consumer):
    """A consumer on its own channel, so its prefetch and its acks are its own."""

    def __init__(
        self,
        transport: Transport,
        channel: AbstractRobustChannel,
        queue: str,
        handler: Handler,
        *,
        timeout: float,
        on_stopped: Callable[[AmqpConsumer], None],
        delivery_limit: int | None = None,
    ) -> None:
        self._transport = transport
        self._delivery_limit = delivery_limit
        self._on_stopped = on_stopped
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._timeout = timeout
        self._tag: str | None = None
        self._amqp_queue: AbstractRobustQueue | None = None
        self._in_flight: set[asyncio.Task[object]] = set()
        self._stopping = False
        self._drained = False

    @property
    def queue(self) -> str:
        """The queue this consumer takes deliveries from."""
        return self._queue

    async def _start(self) -> None:
        # A robust, passive declaration: it fails loudly if the queue is missing,
        # and registers the queue on the channel so a reconnect restores the consumer.
        self._amqp_queue = await self._channel.declare_queue(self._queue, passive=True)
        self._tag = await self._amqp_queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._drained:
            # stop() already waited for the handlers and is closing the channel,
            # which returns this message to the queue.
            return
        self._transport.consumed += 1
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            try:
                delivery = AmqpDelivery(
                    message,
                    queue=self._queue,
                    transport=self._transport,
                    delivery_limit=self._delivery_limit,
                )
            except Exception:
                logger.exception("cannot decode a message from %s; requeueing", self._queue)
                with contextlib.suppress(*CHANNEL_GONE):
                    await message.nack(requeue=True)
                return
            await run_handler(self._handler, delivery)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def stop(self) -> None:
        """Cancel the subscription, wait for the handlers in flight, close the channel."""
        if self._stopping:
            return
        self._stopping = True
        if self._amqp_queue is not None and self._tag is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._amqp_queue.cancel(self._tag)
            except (TimeoutError, *CHANNEL_GONE) as exc:
                # During an outage the cancel cannot reach the broker; closing the
                # channel below ends the subscription all the same.
                logger.warning("cancelling the consumer of %s failed: %r", self._queue, exc)
        await self._drain()
        self._drained = True
        try:
            async with asyncio.timeout(self._timeout):
                await self._channel.close()
        except (TimeoutError, *CHANNEL_GONE) as exc:
            logger.warning("closing the channel of the consumer of %s failed: %r", self._queue, exc)
        self._on_stopped(self)

    async def _drain(self) -> None:
        # A delivery that arrived just before the cancel-ok may not have started
        # its task yet: let the loop run, then wait until nothing is in flight.
        current = asyncio.current_task()
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
            pending = {task for task in self._in_flight if task is not current}
            if not pending:
                return
            await asyncio.wait(pending)
