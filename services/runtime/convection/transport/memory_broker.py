"""The state of the in-process broker: exchanges, quorum-like queues, acks, dead letters.

`MemoryBroker` models what the rest of Convection relies on: direct and topic
routing, the default exchange `""` (routing key = queue name), mandatory publishing
(`Unroutable`), prefetch, manual acks, requeueing (which sets `redelivered` and counts
towards the queue's delivery limit, as `x-delivery-count` does on a quorum queue),
dead-lettering by the limit to `<queue>.dead` with RabbitMQ's `x-first-death-*` and
`x-death` headers, and unacked deliveries returning to their queue when their holder
lets go. Like dramatiq's StubBroker it has `join()`, for tests and the embedded demo.

Everything here is synchronous and runs on the event loop's thread, so no lock is
needed; `MemoryTransport` (convection.transport.memory) is its only client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from contracts.topology import DEAD_LETTER_EXCHANGE, ExchangeType, Topology
from convection.transport.base import PublishError, TransportError, Unroutable
from convection.transport.headers import (
    DEATH_HEADER,
    FIRST_DEATH_EXCHANGE_HEADER,
    FIRST_DEATH_QUEUE_HEADER,
    FIRST_DEATH_REASON_HEADER,
)
from convection.transport.routing import routes

logger = logging.getLogger(__name__)

DEFAULT_EXCHANGE = ""
"""The exchange every queue is bound to by its own name, as in AMQP."""


@dataclass
class StoredMessage:
    """A message as a queue holds it, with its delivery count."""

    body: bytes
    message_id: str | None
    headers: dict[str, object]
    content_type: str | None
    exchange: str
    routing_key: str
    delivery_count: int = 0
    redelivered: bool = False
    user_id: str | None = None


class Holder:
    """Who holds unacked deliveries: a consumer (with a prefetch) or basic.get (without)."""

    def __init__(self, prefetch: int | None = None) -> None:
        self.prefetch = prefetch
        self.unacked: dict[int, str] = {}  # delivery tag -> queue name
        self.active = True

    def has_capacity(self) -> bool:
        """Whether the holder takes another delivery now."""
        return self.active and (self.prefetch is None or len(self.unacked) < self.prefetch)


class Subscriber(Protocol):
    """What the broker needs of a consumer to hand it deliveries."""

    @property
    def queue(self) -> str:
        """The queue it consumes."""
        ...

    @property
    def holder(self) -> Holder:
        """The holder of its unacked deliveries, with its prefetch."""
        ...

    def deliver(self, tag: int, message: StoredMessage) -> None:
        """Take one delivery (and start handling it)."""
        ...


@dataclass
class _Queue:
    name: str
    delivery_limit: int | None
    dead_letter_key: str | None
    ready: deque[StoredMessage] = field(default_factory=deque)
    unacked: dict[int, tuple[StoredMessage, Holder]] = field(default_factory=dict)
    consumers: list[Subscriber] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)


class MemoryBroker:
    """An in-process broker shared by the components of one process.

    Pass the one broker to every `MemoryTransport` of the process explicitly;
    there is no global registry.
    """

    def __init__(self) -> None:
        self._exchanges: dict[str, ExchangeType] = {}
        self._bindings: dict[str, list[tuple[str, str]]] = {}  # exchange -> (key, queue)
        self._queues: dict[str, _Queue] = {}
        self._tags = itertools.count(1)
        self._changed = asyncio.Event()

    # The timeout parameter mirrors dramatiq's StubBroker.join(queue, timeout).
    async def join(self, queue: str, timeout: float = 5.0, *, fail_fast: bool = False) -> None:  # noqa: ASYNC109
        """Wait until `queue` has no ready and no unacked message.

        Args:
            queue: The queue to wait for.
            timeout: Seconds to wait before raising TimeoutError.
            fail_fast: Raise the first error a handler of `queue` raised since the
                last join, instead of waiting (the error is logged and requeued anyway).
        """
        state = self._queue(queue)
        try:
            async with asyncio.timeout(timeout):
                failure = await self._drained(state, fail_fast=fail_fast)
        except TimeoutError as exc:
            raise TimeoutError(
                f"{queue!r} not drained within {timeout}s: "
                f"{len(state.ready)} ready, {len(state.unacked)} unacked"
            ) from exc
        finally:
            # Each failure was logged and requeued already; a join reports it at most once.
            state.failures = []
        if failure is not None:
            raise failure

    async def _drained(self, state: _Queue, *, fail_fast: bool) -> Exception | None:
        while not (fail_fast and state.failures):
            if not state.ready and not state.unacked:
                return None
            await self._changed.wait()
        return state.failures[0]

    def _notify(self) -> None:
        # Waking every waiter with a fresh event keeps join() free of polling.
        self._changed.set()
        self._changed = asyncio.Event()

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise TransportError(f"no queue {name!r}") from None

    def _delivery_limit(self, name: str) -> int | None:
        """The delivery limit of queue `name` (None: it has none)."""
        return self._queue(name).delivery_limit

    def _declare(self, topology: Topology) -> None:
        exchanges = {exchange.name: exchange.type for exchange in topology.exchanges}
        exchanges.setdefault(DEAD_LETTER_EXCHANGE, "direct")
        queues = [_Queue(q.name, q.delivery_limit, q.name) for q in topology.queues]
        queues += [_Queue(q.dead_letter, None, None) for q in topology.queues]
        # Check everything before changing anything; like RabbitMQ, a declaration
        # that differs from what exists is refused (PRECONDITION_FAILED).
        for name, kind in exchanges.items():
            if self._exchanges.get(name, kind) != kind:
                raise TransportError(f"exchange {name!r} exists with another type than {kind!r}")
        for queue in queues:
            existing = self._queues.get(queue.name)
            if existing is not None and (existing.delivery_limit, existing.dead_letter_key) != (
                queue.delivery_limit,
                queue.dead_letter_key,
            ):
                raise TransportError(f"queue {queue.name!r} exists with other arguments")
        self._exchanges.update(exchanges)
        for queue in queues:
            self._queues.setdefault(queue.name, queue)
        for declared in topology.queues:
            for binding in declared.bindings:
                self._bind(binding.exchange, binding.routing_key, declared.name)
            self._bind(DEAD_LETTER_EXCHANGE, declared.name, declared.dead_letter)

    def _bind(self, exchange: str, key: str, queue: str) -> None:
        if exchange not in self._exchanges:
            raise TransportError(f"cannot bind {queue!r}: no exchange {exchange!r}")
        bindings = self._bindings.setdefault(exchange, [])
        if (key, queue) not in bindings:
            bindings.append((key, queue))

    def _route(self, exchange: str, routing_key: str) -> list[_Queue]:
        if exchange == DEFAULT_EXCHANGE:
            found = self._queues.get(routing_key)
            return [found] if found is not None else []
        kind = self._exchanges[exchange]
        names = {q for key, q in self._bindings.get(exchange, []) if routes(kind, key, routing_key)}
        # A queue bound twice still gets one copy, as in RabbitMQ.
        return [self._queues[name] for name in sorted(names)]

    def _publish(self, message: StoredMessage, *, mandatory: bool) -> None:
        context = {
            "exchange": message.exchange,
            "routing_key": message.routing_key,
            "message_id": message.message_id or "",
        }
        if message.exchange not in self._exchanges and message.exchange != DEFAULT_EXCHANGE:
            raise PublishError("no such exchange", **context)
        targets = self._route(message.exchange, message.routing_key)
        if not targets and mandatory:
            raise Unroutable("no queue is bound for the routing key", **context)
        for queue in targets:
            queue.ready.append(replace(message, headers=dict(message.headers)))
            self._dispatch(queue)
        self._notify()

    def _dispatch(self, queue: _Queue) -> None:
        while queue.ready:
            consumer = self._next_consumer(queue)
            if consumer is None:
                return
            message = queue.ready.popleft()
            tag = next(self._tags)
            queue.unacked[tag] = (message, consumer.holder)
            consumer.holder.unacked[tag] = queue.name
            consumer.deliver(tag, message)

    @staticmethod
    def _next_consumer(queue: _Queue) -> Subscriber | None:
        # Round robin over the consumers with room under their prefetch.
        for _ in range(len(queue.consumers)):
            consumer = queue.consumers.pop(0)
            queue.consumers.append(consumer)
            if consumer.holder.has_capacity():
                return consumer
        return None

    def _subscribe(self, consumer: Subscriber) -> None:
        queue = self._queue(consumer.queue)
        queue.consumers.append(consumer)
        self._dispatch(queue)

    def _unsubscribe(self, consumer: Subscriber) -> None:
        queue = self._queues[consumer.queue]
        if consumer in queue.consumers:
            queue.consumers.remove(consumer)

    def _get(self, name: str, owner: Holder) -> tuple[int, StoredMessage] | None:
        queue = self._queue(name)
        if not queue.ready:
            return None
        message = queue.ready.popleft()
        tag = next(self._tags)
        queue.unacked[tag] = (message, owner)
        owner.unacked[tag] = name
        self._notify()
        return tag, message

    def _settle(self, name: str, tag: int, owner: Holder, *, requeue: bool) -> bool:
        queue = self._queues[name]
        entry = queue.unacked.get(tag)
        if entry is None or entry[1] is not owner:
            return False
        del queue.unacked[tag]
        del owner.unacked[tag]
        if requeue:
            self._return(queue, entry[0])
        self._dispatch(queue)
        self._notify()
        return True

    def _release(self, owner: Holder) -> None:
        """Return what `owner` holds unacked to its queues, as a closing channel does."""
        owner.active = False
        # Newest first, each to the head of its queue: the original order survives.
        for tag, name in sorted(owner.unacked.items(), reverse=True):
            queue = self._queues[name]
            message, _ = queue.unacked.pop(tag)
            self._return(queue, message)
        touched = set(owner.unacked.values())
        owner.unacked.clear()
        for name in sorted(touched):
            self._dispatch(self._queues[name])
        self._notify()

    def _return(self, queue: _Queue, message: StoredMessage) -> None:
        message.delivery_count += 1
        # Quorum queues dead-letter once the returns exceed the limit (limit + 1 deliveries).
        if queue.delivery_limit is not None and message.delivery_count > queue.delivery_limit:
            self._dead_letter(queue, message, reason="delivery_limit")
            return
        message.redelivered = True
        queue.ready.appendleft(message)

    def _dead_letter(self, queue: _Queue, message: StoredMessage, *, reason: str) -> None:
        if queue.dead_letter_key is None:
            logger.warning("dropped %s from %s: no dead-letter exchange", reason, queue.name)
            return
        headers = dict(message.headers)
        headers.setdefault(FIRST_DEATH_REASON_HEADER, reason)
        headers.setdefault(FIRST_DEATH_QUEUE_HEADER, queue.name)
        headers.setdefault(FIRST_DEATH_EXCHANGE_HEADER, message.exchange)
        death: dict[str, object] = {
            "count": 1,
            "reason": reason,
            "queue": queue.name,
            "time": datetime.now(UTC),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
        earlier = headers.get(DEATH_HEADER)
        headers[DEATH_HEADER] = [death, *(earlier if isinstance(earlier, list) else [])]
        dead = StoredMessage(
            body=message.body,
            message_id=message.message_id,
            headers=headers,
            content_type=message.content_type,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=queue.dead_letter_key,
        )
        targets = self._route(DEAD_LETTER_EXCHANGE, queue.dead_letter_key)
        if not targets:
            logger.warning("dropped a dead letter of %s: no dead-letter queue bound", queue.name)
        for target in targets:
            target.ready.append(replace(dead, headers=dict(headers)))
            self._dispatch(target)

    def _record_failure(self, name: str, exc: Exception) -> None:
        self._queues[name].failures.append(exc)
        self._notify()
