"""The transport over RabbitMQ, through aio-pika's robust connection.

One robust connection carries: a publishing channel with publisher confirms and
`on_return_raises=True` (so an unroutable mandatory message raises instead of
being "confirmed"), a channel for declarations and queue depths, a channel for
basic.get, and one channel per consumer with its own prefetch. The robust
connection reconnects by itself and restores those channels, the topology and
the consumers; what it does not do is bound a publish during an outage, so every
publish attempt runs under a timeout and is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractRobustChannel,
    AbstractRobustConnection,
    HeadersType,
)
from aiormq import spec
from aiormq.exceptions import (
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)
from aiormq.exceptions import PublishError as ReturnedError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from yarl import URL

from contracts.topology import Topology
from convection.transport.amqp_consumer import CHANNEL_GONE, AmqpConsumer, AmqpDelivery
from convection.transport.amqp_socket import RobustConnection
from convection.transport.amqp_topology import TopologyMissing, check_topology, declare_topology
from convection.transport.base import (
    DEFAULT_CONTENT_TYPE,
    Consumer,
    Delivery,
    Handler,
    PublishError,
    PublishNacked,
    PublishTimeout,
    Transport,
    TransportClosed,
    TransportError,
    Unroutable,
)

logger = logging.getLogger(__name__)

_FIRST_RETRY_WAIT = 0.1
"""Seconds before the second attempt of a publish (jittered up to twice as long)."""


def _retryable(exc: BaseException) -> bool:
    # Unroutable is a routing fact: publishing again cannot change it.
    return isinstance(exc, PublishError) and not isinstance(exc, Unroutable)


def _log_retry(state: RetryCallState) -> None:
    # The first attempt ran before the retry loop: its attempts are numbered from the second.
    exc = state.outcome.exception() if state.outcome else None
    _log_retry_after(state.attempt_number + 1, exc)


def _log_retry_after(attempt: int, exc: BaseException | None) -> None:
    logger.warning("publish attempt %d failed: %s; retrying", attempt, exc)


async def _usable(channel: AbstractRobustChannel) -> None:
    # After a channel error (a 404 for a missing queue, say) the robust channel
    # reopens itself in the background; wait for that rather than use the dead one.
    while True:
        await channel.ready()
        if not channel.is_closed:
            return
        await asyncio.sleep(0.01)


HEARTBEAT_SECONDS = 5
"""AMQP heartbeat interval: a silent peer is dropped after about two of them (~10-15 s)."""


class AmqpTransport(Transport):
    """The transport over RabbitMQ (aio-pika's robust connection, quorum queues)."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        publish_timeout: float = 5.0,
        publish_attempts: int = 3,
        connect_timeout: float = 10.0,
        heartbeat: int = HEARTBEAT_SECONDS,
        declare: bool = True,
    ) -> None:
        if publish_attempts < 1:
            raise ValueError("publish_attempts must be at least 1")
        self._url = url
        self._topology = topology
        self._publish_timeout = publish_timeout
        self._publish_attempts = publish_attempts
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._declare = declare
        # RabbitMQ validates user_id against the connection's user: the URL's, or guest.
        self.user = URL(url).user or "guest"
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._declarer: AbstractRobustChannel | None = None
        self._getter: AbstractRobustChannel | None = None
        self._consumers: set[AmqpConsumer] = set()
        self._closing = False

    async def connect(self) -> None:
        """Connect (robustly) and declare the topology; calling it again redeclares it."""
        opened_here = self._connection is None
        try:
            if self._connection is None:
                # A heartbeat a URL sets wins; otherwise ours, so the broker finds a frozen or
                # partitioned process within about two intervals and gives its unacked
                # messages to another consumer (the default of 60 s would take minutes).
                url = URL(self._url)
                if "heartbeat" not in url.query:
                    url = url.update_query(heartbeat=self._heartbeat)
                self._connection = await aio_pika.connect_robust(
                    url, timeout=self._connect_timeout, connection_class=RobustConnection
                )
                self._publisher = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self._declarer = await self._connection.channel(publisher_confirms=False)
                self._getter = await self._connection.channel(publisher_confirms=False)
            assert self._declarer is not None
            async with asyncio.timeout(self._connect_timeout):
                if self._declare:
                    await declare_topology(self._declarer, self._topology)
                else:
                    await check_topology(self._declarer, self._topology)
        except TopologyMissing:
            if opened_here:
                await self.close()
            raise
        except (*CHANNEL_GONE, OSError, TimeoutError) as exc:
            # A failed connect() leaves nothing open: `async with` never calls close().
            if opened_here:
                await self.close()
            if isinstance(exc, ChannelPreconditionFailed):
                raise TransportError(f"the broker's topology differs from ours: {exc}") from exc
            raise TransportError(f"cannot connect to RabbitMQ: {exc!r}") from exc

    async def close(self) -> None:
        """Stop every consumer (waiting for its handlers), then close the connection."""
        if self._connection is None or self._closing:
            return
        self._closing = True
        try:
            # Still connected meanwhile: a handler in flight may publish its reply.
            for consumer in list(self._consumers):
                await consumer.stop()
        finally:
            connection, self._connection = self._connection, None
            self._publisher = self._declarer = self._getter = None
            self._closing = False
            await connection.close()

    def _require(self, *, new_work: bool = False) -> AbstractRobustConnection:
        # While closing, handlers in flight still publish and settle; nothing new starts.
        if self._connection is None or (new_work and self._closing):
            raise TransportClosed("the AMQP transport is not connected")
        return self._connection

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
        """Publish persistent and confirmed; each attempt is bounded, retried unless Unroutable."""
        amqp_headers: HeadersType = dict(headers or {})

        def message() -> spec.Basic.Properties:
            return spec.Basic.Properties(
                headers=amqp_headers,
                content_type=content_type,
                message_id=message_id,
                delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
                user_id=self.user,
            )

        try:
            await self._publish_once(exchange, routing_key, body, message(), mandatory=mandatory)
        except Exception as exc:
            if self._publish_attempts == 1 or not _retryable(exc):
                raise
            # Only a failed first attempt pays for the retry machinery.
            _log_retry_after(1, exc)
            await asyncio.sleep(_FIRST_RETRY_WAIT * (1 + random.random()))  # noqa: S311
        else:
            self.published += 1
            return
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._publish_attempts - 1),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._publish_once(
                    exchange, routing_key, body, message(), mandatory=mandatory
                )
        self.published += 1

    async def _publish_once(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
        *,
        mandatory: bool,
    ) -> None:
        self._require()
        channel = self._publisher
        assert channel is not None
        context = {
            "exchange": exchange,
            "routing_key": routing_key,
            "message_id": properties.message_id or "",
        }
        try:
            # A robust channel waits for the connection to come back, forever:
            # the timeout bounds the wait (mosquito/aio-pika#636).
            async with asyncio.timeout(self._publish_timeout):
                await _usable(channel)
                # aio-pika's channels are aiormq's; its abstract type does not name `wait`.
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
                # wait=False: the channel's lock is released once the frames are queued, not
                # after the writer sent them, so concurrent publishes do not queue up one
                # event-loop turn each behind the lock (py-spy: aiormq's basic_publish was a
                # fifth of the coordinator's time under load). The broker's confirm is still
                # what this awaits: nothing counts as published before it.
                await underlay.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                    wait=False,
                )
        except ReturnedError as exc:
            raise Unroutable("the broker returned the message", **context) from exc
        except DeliveryError as exc:
            raise PublishNacked("the broker nacked the message", **context) from exc
        except TimeoutError as exc:
            raise PublishTimeout(
                f"no confirmation within {self._publish_timeout}s", **context
            ) from exc
        except CHANNEL_GONE as exc:
            raise PublishError(f"publish failed: {exc!r}", **context) from exc

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Consume `queue` on a channel of its own with `prefetch` unacked deliveries at most."""
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        connection = self._require(new_work=True)
        # Checked on the shared declaring channel first: a 404 would close the new
        # channel, which the robust connection would then race to reopen.
        await self.queue_depth(queue)
        channel: AbstractRobustChannel | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=prefetch)
                consumer = AmqpConsumer(
                    self,
                    channel,
                    queue,
                    handler,
                    timeout=self._publish_timeout,
                    on_stopped=self._consumers.discard,
                    delivery_limit=self._topology.delivery_limit(queue),
                )
                await consumer._start()
        except (TimeoutError, *CHANNEL_GONE) as exc:
            if channel is not None:
                with contextlib.suppress(*CHANNEL_GONE):
                    await channel.close()
            raise TransportError(f"cannot consume {queue!r}: {exc!r}") from exc
        self._consumers.add(consumer)
        return consumer

    async def get(self, queue: str) -> Delivery | None:
        """Take one message from `queue` with basic.get; the caller settles it."""
        self._require()
        channel = self._getter
        assert channel is not None
        try:
            async with asyncio.timeout(self._publish_timeout):
                await _usable(channel)
                amqp_queue = await channel.get_queue(queue, ensure=False)
                message = await amqp_queue.get(no_ack=False, fail=False)
        except ChannelNotFoundEntity as exc:
            raise TransportError(f"no queue {queue!r}") from exc
        except (TimeoutError, *CHANNEL_GONE) as exc:
            raise TransportError(f"basic.get on {queue!r} failed: {exc!r}") from exc
        if message is None:
            return None
        return AmqpDelivery(
            message,
            queue=queue,
            transport=self,
            delivery_limit=self._topology.delivery_limit(queue),
        )

    async def queue_depth(self, queue: str) -> int:
        """Count the ready messages of `queue` (a passive declaration)."""
        declared = await self._passive_declare(queue, "count")
        return declared.message_count or 0

    async def queue_consumers(self, queue: str) -> int | None:
        """Count the consumers of `queue` (a passive declaration), or None if it cannot."""
        declared = await self._passive_declare(queue, "count consumers of")
        return declared.consumer_count or 0

    async def _passive_declare(self, queue: str, doing: str) -> spec.Queue.DeclareOk:
        self._require()
        channel = self._declarer
        assert channel is not None
        try:
            async with asyncio.timeout(self._publish_timeout):
                await _usable(channel)
                # The underlying channel: the robust one answers passive declarations
                # of known queues from its cache, without asking the broker.
                # aio-pika's channels are aiormq's; its abstract type does not name `wait`.
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
                return await underlay.queue_declare(queue, passive=True)
        except ChannelNotFoundEntity as exc:
            raise TransportError(f"no queue {queue!r}") from exc
        except (TimeoutError, *CHANNEL_GONE) as exc:
            raise TransportError(f"cannot {doing} {queue!r}: {exc!r}") from exc

    async def ping(self) -> bool:
        """Report whether the connection is up (False while it reconnects)."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()
