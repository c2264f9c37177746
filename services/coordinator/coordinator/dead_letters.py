"""The dead-letter collector: every dead letter of the coordinator's queues, kept as a row.

Whoever rejected a message (a coordinator, a participant, the broker at a delivery limit), its
copy lands in `<queue>.dead` with its reason and source queue. Every coordinator replica
consumes the dead-letter queues of its own queues and of the command queue of every service its
sagas use; it inserts the dead letter (one row however often it is collected, see
`store.dead_letters`), commits, counts it, then acks. Operators list and replay the rows
through `coordinator.dead_letter_ops`.

The dead-letter queues have no delivery limit (nothing dead-letters a dead letter), so a row
that cannot be written now is held back a while and returned, never dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from contracts import MAX_MESSAGE_BYTES
from contracts.topology import (
    DEAD_AT_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    dead_letter_queue,
)
from convection.transport import Consumer, Delivery, Transport
from coordinator.errors import StoreError
from coordinator.metrics import Metrics
from coordinator.store import DeadLetter, Store

logger = logging.getLogger(__name__)

UNKNOWN_REASON = "unknown"
"""The reason recorded for a dead letter that carries none (published there by hand)."""


def _clean(text: str | None, limit: int) -> str | None:
    # PostgreSQL text cannot hold NUL, nor UTF-8 of lone surrogates; hostile headers have both.
    if text is None:
        return None
    safe = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return safe[:limit]


def _field(parsed: Any, name: str, limit: int) -> str | None:
    value = parsed.get(name) if isinstance(parsed, dict) else None
    return _clean(value, limit) if isinstance(value, str) and len(value) <= limit else None


def _dead_at(headers: Mapping[str, str]) -> datetime | None:
    text = headers.get(DEAD_AT_HEADER)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def letter_of(delivery: Delivery, source_queue: str) -> DeadLetter:
    """Return what to keep of a delivery from the dead-letter queue of `source_queue`."""
    parsed: Any = None
    if len(delivery.body) <= MAX_MESSAGE_BYTES:
        try:
            parsed = json.loads(delivery.body)
        except (ValueError, RecursionError):
            parsed = None
    headers = {
        _clean(key, 1000) or "": _clean(value, 100_000) or ""
        for key, value in delivery.headers.items()
    }
    return DeadLetter(
        queue=source_queue,
        reason=_clean(delivery.headers.get(REASON_HEADER), 200) or UNKNOWN_REASON,
        body=delivery.body,
        headers=headers,
        message_id=_clean(delivery.message_id, 300),
        error=_clean(delivery.headers.get(ERROR_HEADER), 4000),
        message_type=_field(parsed, "type", 100),
        saga_id=_field(parsed, "saga_id", 128),
        content_type=_clean(delivery.content_type, 200),
        dead_at=_dead_at(delivery.headers),
    )


class DeadLetterCollector:
    """Consumes the dead-letter queues of `queues` into the `dead_letters` table.

    Args:
        store: The coordinator's store.
        transport: A connected transport whose topology declares `queues`.
        metrics: Where collected dead letters are counted.
        queues: The source queues whose dead letters to collect.
        prefetch: Deliveries in flight per dead-letter queue.
        backoff: Seconds a dead letter is held back when the database cannot take it.
    """

    def __init__(
        self,
        *,
        store: Store,
        transport: Transport,
        metrics: Metrics,
        queues: Sequence[str],
        prefetch: int = 8,
        backoff: float = 2.0,
    ) -> None:
        self._store = store
        self._transport = transport
        self._metrics = metrics
        self._queues = tuple(queues)
        self._prefetch = prefetch
        self._backoff = backoff
        self._consumers: list[Consumer] = []

    async def start(self) -> None:
        """Start consuming every dead-letter queue."""
        for queue in self._queues:
            consumer = await self._transport.consume(
                dead_letter_queue(queue), self._handler(queue), prefetch=self._prefetch
            )
            self._consumers.append(consumer)

    async def stop(self) -> None:
        """Stop consuming, finishing what is in flight."""
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop()

    def _handler(self, source_queue: str) -> Any:
        async def collect(delivery: Delivery) -> None:
            await self.collect(delivery, source_queue)

        return collect

    async def collect(self, delivery: Delivery, source_queue: str) -> None:
        """Keep one dead letter of `source_queue`, then ack it."""
        letter = letter_of(delivery, source_queue)
        try:
            inserted = await self._insert(letter)
        except Exception:
            # Held while waiting, so a database outage is not a hot requeue loop; the
            # transport requeues it when this raises.
            logger.exception("cannot keep a dead letter of %s yet; retrying later", source_queue)
            await asyncio.sleep(self._backoff)
            raise
        if inserted:
            self._metrics.dead_letters_collected.labels(letter.queue, letter.reason).inc()
            logger.info(
                "dead letter of %s kept: message %s (%s)",
                letter.queue,
                letter.message_id,
                letter.reason,
            )
        await delivery.ack()

    async def _insert(self, letter: DeadLetter) -> bool:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(4),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            retry=retry_if_exception_type(StoreError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._store.transaction() as conn:
                    return await self._store.add_dead_letter(
                        conn, letter, await self._store.now(conn)
                    )
        raise AssertionError("unreachable: tenacity reraises the last error")
