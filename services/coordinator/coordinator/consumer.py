"""The coordinator's message handlers: decode, run the transaction, then settle the delivery.

A message is acked only after its effects committed. Bad input never crashes a consumer and
is never dropped: it is dead-lettered with the reason in a header, logged, and counted.
Reasons: the decoder's (`contracts.BAD_MESSAGE_REASONS`), unexpected_type (a valid message on
the wrong queue), unknown_saga_type, invalid_input, unknown_saga and unknown_step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from contracts import (
    MAX_MESSAGE_BYTES,
    AnyMessage,
    BadMessage,
    CancelSaga,
    Reply,
    StartSaga,
    WakeSaga,
    decode,
)
from convection.outage import Outage
from convection.tracing import consumer_span, messaging_attributes
from convection.transport import Delivery
from coordinator.core import CancelRequested, LockGranted, message_id
from coordinator.errors import Conflict, StoreUnavailable
from coordinator.failpoints import AFTER_COMMIT
from coordinator.metrics import Metrics
from coordinator.outcome import Outcome
from coordinator.processor import Processor
from coordinator.trace import TRACEPARENT, saga_start_span, trace_id_from

logger = logging.getLogger(__name__)


def database_outage() -> Outage:
    """Return the outage state of a coordinator's database (shared by its loops)."""
    return Outage("database", lambda exc: isinstance(exc, StoreUnavailable | Conflict))


class Handlers:
    """Handlers of the two coordinator queues, over one Processor."""

    def __init__(
        self,
        processor: Processor,
        metrics: Metrics,
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        database: Outage | None = None,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.max_bytes = max_bytes
        # A database outage is not the message's fault: keep it and try again (see Outage).
        self.database = database or database_outage()

    async def on_saga_message(self, delivery: Delivery) -> None:
        """Handle StartSaga, CancelSaga and WakeSaga from the sagas queue."""
        msg = await self._decode(delivery)
        if msg is None:
            return
        outcome: Outcome
        if isinstance(msg, StartSaga):
            outcome = await self._start(delivery, msg)
        elif isinstance(msg, CancelSaga):
            reason, by = msg.reason, msg.requested_by
            with self._span(delivery, "cancel", {"id": msg.saga_id}):
                outcome = await self.database.run(
                    lambda: self.processor.feed(
                        msg.saga_id,
                        lambda at: CancelRequested(at=at, reason=reason, requested_by=by),
                        message_id=msg.message_id,
                    )
                )
        elif isinstance(msg, WakeSaga):
            with self._span(delivery, "wake", {"id": msg.saga_id}):
                outcome = await self.database.run(
                    lambda: self.processor.feed(
                        msg.saga_id, lambda at: LockGranted(at=at), message_id=msg.message_id
                    )
                )
        else:
            await self._reject(delivery, "unexpected_type", f"{msg.type} on the sagas queue")
            return
        await self._settle(delivery, msg.type, outcome)

    async def on_reply(self, delivery: Delivery) -> None:
        """Handle a participant's Reply from the replies queue."""
        msg = await self._decode(delivery)
        if msg is None:
            return
        if not isinstance(msg, Reply):
            await self._reject(delivery, "unexpected_type", f"{msg.type} on the replies queue")
            return
        saga = {
            "id": msg.saga_id,
            "step": msg.step,
            "attempt": msg.attempt,
            "compensation": msg.compensation,
        }
        # A CONSUMER span child of the adapter's span: the commands it decides are stored
        # with its context, so the next producer spans hang under it.
        with self._span(delivery, f"{msg.step} reply", saga) as span:
            outcome = await self.database.run(
                lambda: self.processor.reply(msg, sender=delivery.user_id)
            )
            if span is not None:
                span.set_attribute("saga.reply.outcome", msg.outcome)
        await self._settle(delivery, msg.type, outcome)

    async def _start(self, delivery: Delivery, msg: StartSaga) -> Outcome:
        # The same saga id as the processor derives, so the start span's id is known later.
        saga_id = msg.saga_id or message_id("saga", msg.message_id)
        attributes = self._attributes(delivery, {"id": saga_id, "type": msg.saga_type})
        with saga_start_span(msg.saga_type, saga_id, delivery.headers, attributes) as trace:
            return await self.database.run(lambda: self.processor.start_saga(msg, trace_id=trace))

    @contextmanager
    def _span(self, delivery: Delivery, name: str, saga: dict[str, Any]) -> Iterator[Any]:
        # Only a message that carries a context gets a span: one without would start a trace
        # of its own, and what it decides falls back to the saga's start span at the relay.
        if trace_id_from(delivery.headers) is None:
            yield None
            return
        attributes = self._attributes(delivery, saga)
        with consumer_span(name, {TRACEPARENT: delivery.headers[TRACEPARENT]}, attributes) as span:
            yield span

    @staticmethod
    def _attributes(delivery: Delivery, saga: dict[str, Any]) -> dict[str, Any]:
        return messaging_attributes(
            operation="process",
            exchange=delivery.exchange,
            routing_key=delivery.routing_key,
            message_id=delivery.message_id,
            saga=saga,
        )

    async def _decode(self, delivery: Delivery) -> AnyMessage | None:
        try:
            return decode(delivery.body, max_bytes=self.max_bytes)
        except BadMessage as exc:
            await self._reject(delivery, exc.reason, exc.detail)
            return None

    async def _settle(self, delivery: Delivery, kind: str, outcome: Outcome) -> None:
        self.processor.failpoints.hit(AFTER_COMMIT)
        self.metrics.messages.labels(delivery.queue, outcome.kind).inc()
        if outcome.kind == "rejected":
            await self._reject(delivery, outcome.reason, outcome.note)
            return
        if outcome.kind in ("duplicate", "ignored"):
            self.metrics.duplicates.labels(kind).inc()
            logger.info(
                "%s %s for saga %s changed nothing: %s",
                outcome.kind,
                kind,
                outcome.saga_id,
                outcome.note or "seen before",
            )
        await delivery.ack()

    async def _reject(self, delivery: Delivery, reason: str, detail: str) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        logger.warning(
            "dead-lettering message %s from %s: %s (%s)",
            delivery.message_id,
            delivery.queue,
            reason,
            detail[:500],
        )
        await delivery.dead_letter(reason)
