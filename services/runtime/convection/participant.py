"""The adapter SDK: consume a service's commands, dedupe, run the handler, reply, ack.

Per delivery::

    decode              BadMessage -> dead letter with its reason
    check               not from the coordinator's broker user -> dead letter `forged`;
                        not a command / other service / unknown action -> dead letter
    validate payload    invalid -> reply `failed` (code invalid_payload), ack
    claim the key       serialise work on one idempotency key (see participant_store)
    stored outcome?     -> re-send it, addressed to this command, without running the handler
    tombstone?          a forward command whose compensation succeeded -> `failed`
                        (code already_compensated), so a late command creates nothing
    run the handler     result -> succeeded; StepFailed -> failed; StepRetryable -> retryable;
                        any other exception -> retryable and uncertain (it may have had an
                        effect); a StepError raised with uncertain=True keeps that flag, so the
                        coordinator compensates the step if it never succeeds
    check the result    not the action's result model -> the delivery fails (see below)
    store, publish, ack a final outcome is stored BEFORE it is published: a crash in between
                        redelivers the command, which re-sends the stored reply

The participant's own database unreachable (or a handler failing on it) is not the command's
fault: the delivery is kept and the whole of it tried again in place, with backoff, until the
database answers (`convection.outage`); the prefetch window then fills and no new work is
taken meanwhile.

A delivery that fails otherwise (the result check, the reply store, the broker) is requeued by
the transport; at its last delivery it is dead-lettered with reason `handler_crashed` and the
exception in `x-convection-error`, for an operator to replay once the adapter is fixed. A
handler that returns something other than its result model is such a failure on purpose: its
effect may have happened, so neither `failed` (no effect) nor `retryable` (run it again, with
the same bug) would be a true reply.

Every outcome is counted in `ParticipantMetrics` (`convection.participant_metrics`).

Failpoint (for crash tests): `failpoint="participant.after_effect"` makes the process exit
with `os._exit(137)` once a handler returned and before its outcome is stored: the effect
happened, the reply did not. Adapters take it from `CONVECTION_FAILPOINT`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import BadMessage, Command, ErrorInfo, Progress, Reply, decode, encode, reply_to
from contracts.topology import (
    COMMANDS_EXCHANGE,
    FORGED,
    HANDLER_CRASHED,
    REPLIES_EXCHANGE,
    REPLY_ROUTING_KEY,
    command_queue,
)
from convection.db import trouble
from convection.outage import Outage
from convection.participant_api import (
    Route,
    StepContext,
    StepRetryable,
    collect_routes,
)
from convection.participant_metrics import ParticipantMetrics
from convection.participant_replies import (
    answer_to,
    as_reply,
    final_reply_id,
    validation_summary,
)
from convection.participant_store import Recall, ReplyStore, StoredReply
from convection.tracing import consumer_span, inject, messaging_attributes
from convection.transport import Consumer, Delivery, Transport

logger = logging.getLogger(__name__)

AFTER_EFFECT = "participant.after_effect"
"""Failpoint: exit the process after a handler returned, before its outcome is stored."""

FAILPOINTS = frozenset({AFTER_EFFECT})
"""The failpoints a participant knows."""

__all__ = ["FAILPOINTS", "Participant", "StartHook", "final_reply_id"]

StartHook = Callable[[AsyncEngine], Awaitable[None]]
"""Runs once before consuming, with the participant's database (e.g. to create its tables)."""


class Participant:
    """Runs one service's handlers on its command queue.

    Declare it once, with the handlers and the service they serve; run it with `serve`
    (what `convection participant MODULE:ATTR` does, with settings from the environment),
    or bind a transport and a database at construction and call `start`/`stop`.

    Args:
        service: The service name (its queue is `convection.commands.<service>`).
        handlers: Objects whose `@handles` methods, or `@handles` functions, serve its actions.
        transport: A connected transport (or give it to `serve`).
        db_engine: The database that keeps the stored replies (or give it to `serve`).
        prefetch: Deliveries in flight at once.
        failpoint: A name from `FAILPOINTS` to crash on purpose (tests only), or None.
        on_start: Hooks run with the database before consuming (e.g. to create tables).
        metrics: Where its commands are counted (or give it to `serve`; a fresh one if none).
        coordinator_user: The broker user commands must come from (`Delivery.user_id`); a
            command from anyone else is dead-lettered as `forged`. None accepts any sender.
    """

    def __init__(
        self,
        service: str,
        *,
        handlers: Sequence[object],
        transport: Transport | None = None,
        db_engine: AsyncEngine | None = None,
        prefetch: int = 16,
        failpoint: str | None = None,
        on_start: Sequence[StartHook] = (),
        metrics: ParticipantMetrics | None = None,
        coordinator_user: str | None = None,
    ) -> None:
        if failpoint is not None and failpoint not in FAILPOINTS:
            raise ValueError(f"unknown failpoint {failpoint!r}; known: {sorted(FAILPOINTS)}")
        self.service = service
        self.coordinator_user = coordinator_user
        self._routes = collect_routes(service, list(handlers))
        self._transport = transport
        self._engine = db_engine
        self._store = ReplyStore(db_engine, service) if db_engine is not None else None
        self._prefetch = prefetch
        self._failpoint = failpoint
        self._on_start = tuple(on_start)
        self._consumer: Consumer | None = None
        self.metrics = metrics or ParticipantMetrics()
        self.database = Outage(
            f"{service}'s database",
            lambda exc: trouble(exc) is not None,
            on_change=lambda down: self.metrics.dependency_down(service, "database", down),
        )
        """The state of this participant's database, ridden out by every delivery."""

    @property
    def actions(self) -> list[str]:
        """The action names this participant handles."""
        return sorted(self._routes)

    def bind(
        self,
        *,
        transport: Transport,
        db_engine: AsyncEngine,
        prefetch: int | None = None,
        failpoint: str | None = None,
        metrics: ParticipantMetrics | None = None,
        coordinator_user: str | None = None,
    ) -> None:
        """Give a declared participant the transport and database it runs on."""
        self.coordinator_user = coordinator_user or self.coordinator_user
        if failpoint is not None and failpoint not in FAILPOINTS:
            raise ValueError(f"unknown failpoint {failpoint!r}; known: {sorted(FAILPOINTS)}")
        self.metrics = metrics or self.metrics
        self._transport = transport
        self._engine = db_engine
        self._store = ReplyStore(db_engine, self.service)
        self._prefetch = prefetch or self._prefetch
        self._failpoint = failpoint or self._failpoint

    async def serve(
        self,
        *,
        transport: Transport,
        db_engine: AsyncEngine,
        stop: asyncio.Event | None = None,
        prefetch: int | None = None,
        failpoint: str | None = None,
        metrics: ParticipantMetrics | None = None,
        coordinator_user: str | None = None,
    ) -> None:
        """Run on `transport` and `db_engine` until `stop` is set (or the task is cancelled)."""
        self.bind(
            transport=transport,
            db_engine=db_engine,
            prefetch=prefetch,
            failpoint=failpoint,
            metrics=metrics,
            coordinator_user=coordinator_user,
        )
        await self.run(stop)

    async def start(self) -> None:
        """Run the start hooks, create the tables and start consuming."""
        if self._transport is None or self._engine is None or self._store is None:
            raise RuntimeError(f"participant {self.service}: bind a transport and a database")
        for hook in self._on_start:
            await hook(self._engine)
        await self._store.create_tables()
        self._consumer = await self._transport.consume(
            command_queue(self.service), self.handle, prefetch=self._prefetch
        )
        logger.info("participant %s consuming (%s)", self.service, ", ".join(self.actions))

    async def stop(self) -> None:
        """Stop consuming, waiting for the handlers in flight; calling it again is harmless."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
            logger.info("participant %s stopped", self.service)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start, run until `stop` is set or the task is cancelled, then stop gracefully."""
        await self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            await asyncio.shield(self.stop())

    async def handle(self, delivery: Delivery) -> None:
        """Handle one delivery of the command queue (the transport's handler)."""
        try:
            message = decode(delivery.body)
        except BadMessage as exc:
            logger.warning("%s: dead-lettering %r: %s", self.service, delivery, exc)
            await self._reject(delivery, "", exc.reason)
            return
        if self.coordinator_user is not None and delivery.user_id != self.coordinator_user:
            # Anyone who may publish is not the coordinator: a forged command would change
            # the world with no saga to undo it.
            logger.warning(
                "%s: dead-lettering %r: sent by broker user %r, not the coordinator's %r",
                self.service,
                delivery,
                delivery.user_id,
                self.coordinator_user,
            )
            await self._reject(delivery, "", FORGED)
            return
        if not isinstance(message, Command) or message.service != self.service:
            reason = "wrong_message" if not isinstance(message, Command) else "wrong_service"
            logger.warning("%s: dead-lettering %r: %s", self.service, delivery, reason)
            await self._reject(delivery, "", reason)
            return
        route = self._routes.get(message.action)
        if route is None:
            logger.warning("%s: no handler for %r; dead-lettering", self.service, message.action)
            # Not the wire's action as a label: a stranger's names would grow the metric.
            await self._reject(delivery, "", "unknown_action")
            return
        try:
            payload = route.action.model_validate(message.payload)
        except ValidationError as exc:
            error = ErrorInfo(code="invalid_payload", message=validation_summary(exc))
            await self._publish(reply_to(message, "failed", error=error), final=True)
            await delivery.ack()
            self.metrics.handled(self.service, message.action, "invalid_payload")
            return
        saga = {
            "id": message.saga_id,
            "type": message.saga_type,
            "step": message.step,
            "attempt": message.attempt,
            "compensation": message.compensation,
            "action": message.action,
        }
        attributes = messaging_attributes(
            operation="process",
            exchange=COMMANDS_EXCHANGE,
            routing_key=self.service,
            message_id=message.message_id,
            saga=saga,
        )
        # One CONSUMER span per command, child of the coordinator's PRODUCER span; the handler's
        # own work and the reply (which carries this span's context) nest under it.
        name = f"{message.action} {'compensate' if message.compensation else 'process'}"
        with consumer_span(name, delivery.headers, attributes):
            try:
                await self.database.run(lambda: self._process(delivery, message, route, payload))
            except Exception:
                if delivery.final_delivery:
                    # The transport dead-letters it when this propagates.
                    self.metrics.dead_lettered(self.service, message.action, HANDLER_CRASHED)
                raise

    async def _reject(self, delivery: Delivery, action: str, reason: str) -> None:
        await delivery.dead_letter(reason)
        self.metrics.dead_lettered(self.service, action, reason)

    async def _process(
        self, delivery: Delivery, command: Command, route: Route, payload: Any
    ) -> None:
        where = f"{self.service} saga={command.saga_id} step={command.step} #{command.attempt}"
        key = command.idempotency_key
        # A compensation locks the key it undoes, so it never runs alongside its forward step.
        undoes = command.undoes_key if command.compensation else None
        assert self._store is not None, "handle() runs only after start()"
        async with self._store.claim(undoes or key) as slot:
            recall = await slot.recall(key, undoes_key=undoes, tombstone=not command.compensation)
            stored = recall.stored
            if recall.compensated:
                stored = StoredReply(
                    "failed",
                    None,
                    {"code": "already_compensated", "message": f"step {key} was compensated"},
                )
                logger.warning("%s: forward command after its compensation; refused", where)
                self.metrics.handled(self.service, command.action, "failed")
            elif stored is not None:
                logger.info("%s: answering from the stored %s outcome", where, stored.outcome)
                self.metrics.handled(self.service, command.action, "duplicate")
            else:
                stored = await self._run(where, recall, command, route, payload)
                if stored is not None:
                    await slot.save(
                        key,
                        stored,
                        undoes_key=undoes,
                        saga_id=command.saga_id,
                        step=command.step,
                    )
        if stored is not None:
            await self._publish(as_reply(command, stored), final=True)
        await delivery.ack()

    async def _run(
        self, where: str, recall: Recall, command: Command, route: Route, payload: Any
    ) -> StoredReply | None:
        """Run the handler; return its final outcome, or None after replying `retryable`."""
        done = recall.forward
        forward = done.result if done is not None and done.outcome == "succeeded" else None
        ctx = StepContext.of(command, forward, lambda text, pct: self._progress(command, text, pct))
        logger.info("%s: running %s", where, command.action)
        began = time.perf_counter()

        def ran(outcome: str) -> None:
            self.metrics.handled(self.service, command.action, outcome, time.perf_counter() - began)

        try:
            result = await route.handler(payload, ctx)
        except Exception as exc:
            if trouble(exc) is not None:
                raise  # the database, not the command: ridden out in place (see handle)
            answer = answer_to(exc)
            if answer.outcome == "failed":
                logger.info("%s: failed%s: %s", where, answer.describe(), answer.error.message)
                ran("failed")
                return answer.stored()
            if not isinstance(exc, StepRetryable):
                logger.exception("%s: handler raised; replying retryable (uncertain)", where)
        else:
            if self._failpoint == AFTER_EFFECT:
                logger.critical("%s: failpoint %s: exiting", where, AFTER_EFFECT)
                os._exit(137)
            expected = route.action.RESULT
            if not isinstance(result, expected):
                # See the module docstring: no reply is true, so the delivery fails.
                raise TypeError(
                    f"the {command.action} handler returned {type(result).__name__}, "
                    f"not {expected.__name__}"
                )
            logger.info("%s: succeeded", where)
            ran("succeeded")
            return StoredReply("succeeded", result.model_dump(mode="json"), None)
        logger.info("%s: retryable%s: %s", where, answer.describe(), answer.error.message)
        ran("retryable")
        reply = reply_to(command, "retryable", error=answer.error, uncertain=answer.uncertain)
        await self._publish(reply, final=False)
        return None

    async def _progress(self, command: Command, message: str, percent: float | None) -> None:
        progress = Progress(message=message[:1000], percent=percent)
        await self._publish(reply_to(command, "progress", progress=progress), final=False)

    async def _publish(self, reply: Reply, *, final: bool) -> None:
        if final:
            reply = reply.model_copy(update={"message_id": final_reply_id(reply.command_id)})
        headers: dict[str, str] = {}
        inject(headers)
        assert self._transport is not None, "publishing runs only after start()"
        await self._transport.publish(
            REPLIES_EXCHANGE,
            REPLY_ROUTING_KEY,
            encode(reply),
            message_id=reply.message_id,
            headers=headers,
        )
