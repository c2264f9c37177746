"""The transport interface every backend implements, and its exception tree.

A transport publishes persistent, confirmed messages to exchanges and hands the
messages of a queue to a handler, one `Delivery` at a time, with manual
acknowledgement. Two backends implement it: `AmqpTransport` (RabbitMQ through
aio-pika) and `MemoryTransport` (an in-process broker); one contract suite
checks that they behave alike.

Exceptions::

    TransportError
     ├── PublishError          a message could not be published
     │    ├── Unroutable       the broker returned a mandatory message (never retried)
     │    ├── PublishTimeout   no confirmation in time (the broker may still have it)
     │    └── PublishNacked    the broker refused the message
     └── TransportClosed       the transport is not connected (before connect, after close)
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

from contracts.topology import DEAD_LETTER_EXCHANGE, HANDLER_CRASHED
from convection.transport.headers import dead_letter_headers, error_text

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/json"
"""Content type of a published message unless the caller says otherwise."""


class TransportError(Exception):
    """Base of every error a transport raises."""


class PublishError(TransportError):
    """A message could not be published, after the retries where they apply."""

    def __init__(self, message: str, *, exchange: str, routing_key: str, message_id: str) -> None:
        super().__init__(
            f"{message} (exchange={exchange!r}, routing_key={routing_key!r}, "
            f"message_id={message_id!r})"
        )
        self.exchange = exchange
        self.routing_key = routing_key
        self.message_id = message_id


class Unroutable(PublishError):
    """The broker returned a mandatory message: no queue is bound for its routing key."""


class PublishTimeout(PublishError):
    """The broker did not confirm in time; the message may or may not have been stored."""


class PublishNacked(PublishError):
    """The broker refused to take responsibility for the message (basic.nack)."""


class TransportClosed(TransportError):
    """The transport is not connected: `connect()` was not called, or `close()` was."""


class Delivery(ABC):
    """One message taken from a queue; settle it once with ack, requeue or dead_letter.

    Attributes:
        body: The message body, as published.
        message_id: The publisher's message id (None only for foreign messages).
        exchange: The exchange the message was published to (`convection.dead`
            for a message the broker dead-lettered).
        routing_key: The routing key it was published with.
        queue: The queue it was taken from.
        headers: Header values decoded to str; nested tables and arrays are left out.
        redelivered: True when the broker delivered it before (to any consumer).
        delivery_count: How often it was returned to the queue before (0 on first delivery).
        content_type: The content type, as published.
        delivery_limit: The queue's delivery limit (None for a queue without one): once
            `delivery_count` reaches it, returning the message makes the broker dead-letter it.
        user_id: The broker user that published it, as the broker validated it (RabbitMQ
            refuses a `user_id` other than the publisher's own), or None when unset.
    """

    def __init__(
        self,
        *,
        body: bytes,
        message_id: str | None,
        exchange: str,
        routing_key: str,
        queue: str,
        headers: Mapping[str, str],
        redelivered: bool,
        delivery_count: int,
        content_type: str | None,
        transport: Transport,
        delivery_limit: int | None = None,
        user_id: str | None = None,
    ) -> None:
        self.body = body
        self.message_id = message_id
        self.exchange = exchange
        self.routing_key = routing_key
        self.queue = queue
        self.headers = headers
        self.redelivered = redelivered
        self.delivery_count = delivery_count
        self.content_type = content_type
        self.delivery_limit = delivery_limit
        self.user_id = user_id
        self._transport = transport
        self._settled = False

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} queue={self.queue!r} message_id={self.message_id!r} "
            f"delivery_count={self.delivery_count}>"
        )

    @property
    def settled(self) -> bool:
        """Whether ack, requeue or dead_letter was already called."""
        return self._settled

    @property
    def final_delivery(self) -> bool:
        """Whether this is the last delivery: a requeue now makes the broker dead-letter it."""
        return self.delivery_limit is not None and self.delivery_count >= self.delivery_limit

    async def ack(self) -> None:
        """Tell the broker the message is handled, so it is never delivered again."""
        if self._claim("ack"):
            await self._ack()

    async def requeue(self) -> None:
        """Return the message to its queue; each return counts towards the delivery limit."""
        if self._claim("requeue"):
            await self._requeue()

    async def dead_letter(self, reason: str, *, error: str | None = None) -> None:
        """Park a copy in the queue's dead-letter queue with `reason`, then ack the original.

        The copy carries the reason, the source queue, the original exchange and routing
        key, the time, and `error` when given (`x-convection-error`). It is published
        (confirmed) before the original is acked: a crash in between leaves a duplicate in
        the dead-letter queue, never a loss. If the publish fails, the delivery stays
        unsettled and the error propagates.
        """
        if self._settled:
            logger.warning("%r is already settled; dead_letter(%r) ignored", self, reason)
            return
        await self._transport.publish(
            DEAD_LETTER_EXCHANGE,
            self.queue,
            self.body,
            # aio-pika matches a returned message to its publish by message id, so
            # a foreign message without one gets a fresh id rather than none.
            message_id=self.message_id or uuid.uuid4().hex,
            headers=dead_letter_headers(
                self.headers,
                reason=reason,
                source_queue=self.queue,
                exchange=self.exchange,
                routing_key=self.routing_key,
                error=error,
            ),
            content_type=self.content_type or DEFAULT_CONTENT_TYPE,
        )
        if self._claim("dead_letter"):
            await self._ack()

    def _claim(self, action: str) -> bool:
        # Settling twice is a caller's bug, but raising here would turn a handled
        # message into a handler failure (and a requeue); the first settlement wins.
        if self._settled:
            logger.warning("%r is already settled; %s ignored", self, action)
            return False
        self._settled = True
        return True

    @abstractmethod
    async def _ack(self) -> None:
        """Acknowledge the message at the broker."""

    @abstractmethod
    async def _requeue(self) -> None:
        """Return the message to its queue at the broker."""


Handler = Callable[[Delivery], Awaitable[None]]
"""A consumer's handler: it settles the delivery; an exception requeues it."""


async def run_handler(handler: Handler, delivery: Delivery) -> Exception | None:
    """Run `handler` on `delivery`; on an exception, log it, settle the delivery, return it.

    A failed delivery is requeued, except its final one (see `Delivery.final_delivery`),
    which is dead-lettered here with reason `handler_crashed` and the exception in
    `x-convection-error`: the broker would dead-letter it on that requeue anyway, but
    without saying why.
    """
    try:
        await handler(delivery)
    except Exception as exc:
        # The consumer must survive any handler bug: the message goes back, or at its
        # last delivery to the dead-letter queue with the reason.
        final = delivery.final_delivery
        logger.exception(
            "handler failed on %r (delivery %d); %s",
            delivery,
            delivery.delivery_count,
            "dead-lettering it" if final else "requeueing",
        )
        if not delivery.settled:
            await _settle_failed(delivery, exc, final=final)
        return exc
    return None


async def _settle_failed(delivery: Delivery, exc: Exception, *, final: bool) -> None:
    if final:
        try:
            await delivery.dead_letter(HANDLER_CRASHED, error=error_text(exc))
        except Exception:
            # The requeue below makes the broker dead-letter it, without our reason.
            logger.exception("dead-lettering %r failed; requeueing it", delivery)
        else:
            return
    try:
        await delivery.requeue()
    except Exception:
        logger.exception("requeue of %r failed; the broker will redeliver it", delivery)


class Consumer(ABC):
    """A handler subscribed to one queue, running until `stop()`."""

    @property
    @abstractmethod
    def queue(self) -> str:
        """The queue this consumer takes deliveries from."""

    @abstractmethod
    async def stop(self) -> None:
        """Take no new deliveries, wait for the handlers in flight, release what is unacked.

        Deliveries its handlers left unsettled go back to the queue, like when a
        consumer's channel closes. Calling it again is harmless.
        """


class Transport(ABC):
    """Publishes confirmed messages and consumes queues with manual acknowledgement.

    Use it as an async context manager, or call `connect()` and `close()`. Every message it
    publishes carries its broker user as `user_id`, which the broker validates, so a consumer
    knows who sent a message (`Delivery.user_id`).
    """

    user: str | None = None
    """The broker user this transport publishes as (None: messages carry no user)."""
    published: int = 0
    """Messages published and confirmed so far (counted by the AMQP transport)."""
    consumed: int = 0
    """Deliveries received by its consumers so far (counted by the AMQP transport)."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def connect(self) -> None:
        """Connect and declare the topology; declaring it again is harmless.

        Raises:
            TransportError: The broker is unreachable, or it holds an exchange or a
                queue with other arguments than the topology's.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop every consumer (waiting for its handlers), then disconnect."""

    @abstractmethod
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
        """Publish a persistent message and wait until the broker confirms it.

        Raises:
            Unroutable: `mandatory` is set and no queue is bound for `routing_key`.
            PublishTimeout: The last attempt got no confirmation in time.
            PublishNacked: The broker refused the message on the last attempt.
            PublishError: Any other failure of the last attempt (e.g. unknown exchange).
            TransportClosed: The transport is not connected.
        """

    @abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Start handing the deliveries of `queue` to `handler`, at most `prefetch` unacked.

        Raises:
            TransportError: The queue does not exist.
            TransportClosed: The transport is not connected.
        """

    @abstractmethod
    async def get(self, queue: str) -> Delivery | None:
        """Take one message from `queue` (basic.get), or None when it is empty.

        The caller settles the delivery; an unsettled one returns to the queue on close.
        """

    @abstractmethod
    async def queue_depth(self, queue: str) -> int:
        """Count the messages of `queue` ready for delivery (unacked ones are not counted)."""

    async def queue_consumers(self, queue: str) -> int | None:
        """Count the consumers of `queue`, or None where the transport cannot tell."""
        return None

    @abstractmethod
    async def ping(self) -> bool:
        """Report whether the transport is connected (for readiness checks)."""
