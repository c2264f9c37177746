"""The outbox relay: publishes what committed transactions decided, at least once.

Rows are claimed with `FOR UPDATE SKIP LOCKED` in short transactions, so every replica's
relay takes different rows and a crashed relay's rows go back to the others. Each row is
published with confirms (`mandatory` per row: an unroutable command is an error); sent rows
are marked, failed ones back off, and a row that keeps failing is parked dead with its
reason, so it never blocks the rows behind it. The relay wakes at once after a local commit,
on PostgreSQL NOTIFY from other replicas, and otherwise polls.

Each row is published in its own PRODUCER span, a child of the context stored with the row
(the coordinator span that decided it), never of the relay's own: the relay publishes later,
maybe from another replica. The message carries the producer span's traceparent. A command's
producer span id derives from its message id, so a compensation links to the span of the
step it undoes; a lifecycle event's span records how the saga ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
from opentelemetry.trace import INVALID_SPAN, Link, Span
from sqlalchemy.ext.asyncio import AsyncConnection

from convection.tracing import (
    context_from_traceparent,
    inject,
    link_to,
    messaging_attributes,
    producer_span,
    span_id_for,
)
from convection.transport import Transport
from coordinator.dialect import NOTIFY_CHANNEL, asyncpg_dsn
from coordinator.metrics import Metrics
from coordinator.store import OutboxRow, Store
from coordinator.trace import (
    TRACEPARENT,
    is_fallback,
    producer_key,
    producer_traceparent,
    start_traceparent,
    trace_id_from,
)

logger = logging.getLogger(__name__)

FAILPOINT_BEFORE_PUBLISH = "relay.before_publish"
"""`CONVECTION_FAILPOINT` value that kills the process after a claim, before publishing."""


class OutboxRelay:
    """Sends outbox rows to the broker; one per coordinator, any number per database."""

    def __init__(
        self,
        *,
        store: Store,
        transport: Transport,
        metrics: Metrics,
        batch: int = 100,
        poll_interval: float = 1.0,
        max_attempts: int = 10,
        retention: timedelta = timedelta(hours=1),
        inbox_retention: timedelta = timedelta(days=7),
        backoff_max: float = 60.0,
        listen: bool = True,
    ) -> None:
        self.store = store
        self.transport = transport
        self.metrics = metrics
        self.batch = batch
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.retention = retention
        self.inbox_retention = inbox_retention
        self.backoff_max = backoff_max
        self._listen = listen and store.dialect.postgres
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_maintenance = 0.0

    def wake(self) -> None:
        """Relay now: called after a local commit that wrote outbox rows."""
        self._wake.set()

    async def start(self) -> None:
        """Start relaying in the background (and listening for NOTIFY on PostgreSQL)."""
        self._tasks.append(asyncio.create_task(self._run(), name="outbox-relay"))
        if self._listen:
            self._tasks.append(asyncio.create_task(self._listener(), name="outbox-listen"))

    async def stop(self) -> None:
        """Stop relaying; rows not sent yet stay for the next relay."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def flush(self, *, max_batches: int = 100) -> int:
        """Send every row due now (bounded); return how many were claimed."""
        total = 0
        for _ in range(max_batches):
            claimed = await self.relay_once()
            total += claimed
            if claimed < self.batch:
                break
        return total

    async def relay_once(self) -> int:
        """Claim one batch, publish it, mark what was sent; return how many were claimed."""
        async with self.store.transaction() as conn:
            at = await self.store.now(conn)
            rows = await self.store.claim_outbox(conn, at, self.batch)
            if not rows:
                return 0
            links = await self._links(conn, rows)
            # The rows stay locked while they are published: no other relay sends them.
            results = await asyncio.gather(*(self._publish(r, links.get(r.id, [])) for r in rows))
            sent = [r.id for r, error in zip(rows, results, strict=True) if error is None]
            await self.store.mark_sent(conn, sent, at)
            self.metrics.outbox_sent.inc(len(sent))
            for row, error in zip(rows, results, strict=True):
                if error is None:
                    continue
                self.metrics.outbox_failures.inc()
                attempts = row.attempts + 1
                delay = min(0.5 * 2 ** (attempts - 1), self.backoff_max)
                dead = attempts >= self.max_attempts
                if dead:
                    self.metrics.outbox_dead.inc()
                    logger.error("outbox row %s (%s) is dead: %s", row.id, row.message_id, error)
                else:
                    logger.warning("outbox row %s failed (attempt %d): %s", row.id, attempts, error)
                await self.store.mark_failed(
                    conn,
                    row.id,
                    error,
                    retry_at=at + timedelta(seconds=delay),
                    dead_at=at if dead else None,
                )
        return len(rows)

    async def _links(self, conn: AsyncConnection, rows: list[OutboxRow]) -> dict[int, list[Link]]:
        # A compensation links to the producer span of the forward attempt it undoes (the
        # last one started); that span's id derives from the attempt's message id.
        out: dict[int, list[Link]] = {}
        for row in rows:
            body = _body(row)
            trace_id = trace_id_from(row.headers)
            if not body.get("compensation") or trace_id is None:
                continue
            # The history records the command id of every attempt it started: the last one
            # of this step is the forward attempt being undone.
            step_name = str(body.get("step"))
            started = [
                h.entry.detail.get("command_id")
                for h in await self.store.history(conn, str(body.get("saga_id")))
                if h.entry.kind == "step.started" and h.entry.step == step_name
            ]
            if not started or not started[-1]:
                continue
            out[row.id] = link_to(producer_traceparent(trace_id, str(started[-1])))
        return out

    async def _publish(self, row: OutboxRow, links: list[Link]) -> str | None:
        if os.environ.get("CONVECTION_FAILPOINT") == FAILPOINT_BEFORE_PUBLISH:
            # Tests: die like a SIGKILL after the step committed, before it is published.
            os._exit(137)
        body = _body(row)
        headers = dict(row.headers)
        try:
            with _producer_span(row, body, links) as span:
                if span.get_span_context().is_valid:
                    # The message carries the producer span's context, not the stored one.
                    inject(headers)
                await self.transport.publish(
                    row.exchange,
                    row.routing_key,
                    row.body,
                    message_id=row.message_id,
                    headers=headers,
                    mandatory=row.mandatory,
                )
        except Exception as exc:
            # Any failure is this row's alone: count it on the row, never stop the batch.
            return f"{type(exc).__name__}: {exc}"
        return None

    async def maintain(self) -> None:
        """Update the backlog gauges; delete a small batch of old sent rows and inbox ids."""
        async with self.store.transaction() as conn:
            at = await self.store.now(conn)
            backlog, oldest, _dead = await self.store.outbox_stats(conn)
            self.metrics.outbox_backlog.set(backlog)
            age = (at - oldest).total_seconds() if oldest is not None else 0.0
            self.metrics.outbox_oldest_age.set(max(age, 0.0))
            await self.store.purge_sent(conn, at - self.retention, limit=500)
            await self.store.purge_inbox(conn, at - self.inbox_retention, limit=500)

    async def _run(self) -> None:
        while True:
            claimed = 0
            try:
                claimed = await self.relay_once()
                if time.monotonic() - self._last_maintenance > 5.0:
                    self._last_maintenance = time.monotonic()
                    await self.maintain()
            except Exception:
                logger.exception("outbox relay pass failed; retrying after the poll interval")
            if claimed >= self.batch:
                continue  # more rows are due: no need to wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    async def _listener(self) -> None:
        dsn = asyncpg_dsn(self.store.engine.url.render_as_string(hide_password=False))

        def on_notify(*_args: Any) -> None:
            self._wake.set()

        while True:
            conn = None
            try:
                closed = asyncio.Event()
                conn = await asyncpg.connect(dsn, timeout=10)
                conn.add_termination_listener(lambda *_a, ev=closed: ev.set())
                await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # NOTIFY is only a hint: polling carries on while we reconnect.
                logger.warning("outbox LISTEN connection failed: %r; reconnecting", exc)
                await asyncio.sleep(self.poll_interval)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))


def _body(row: OutboxRow) -> dict[str, Any]:
    # Only to name and attribute the span: a body we cannot read is still published.
    try:
        value = json.loads(row.body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@contextlib.contextmanager
def _producer_span(row: OutboxRow, body: dict[str, Any], links: list[Link]) -> Iterator[Span]:
    stored = row.headers.get(TRACEPARENT)
    trace_id = trace_id_from(row.headers)
    if trace_id is None:
        # A row of no trace (the coordinator's messages to itself): a span here would start
        # a stray trace of its own.
        yield INVALID_SPAN
        return
    saga_id = body.get("saga_id")
    if (
        trace_id is not None
        and isinstance(saga_id, str)
        and is_fallback(stored or "", row.message_id)
    ):
        # No span of the saga decided this row (a timer, tracing off when it was written):
        # hang it under the saga's start span, which always exists in the trace.
        stored = start_traceparent(trace_id, saga_id)
    kind = body.get("type")
    saga: dict[str, Any] = {"id": saga_id, "type": body.get("saga_type")}
    if kind == "step.command":
        compensation = bool(body.get("compensation"))
        saga |= {"step": body.get("step"), "attempt": body.get("attempt")}
        saga["compensation"] = compensation
        name = f"{body.get('step')} {'compensate' if compensation else 'send'}"
    elif kind == "saga.event":
        # The saga's end (completed, compensated, failed, cancelled) is this short span.
        saga["outcome"] = body.get("status")
        saga["event.step"] = body.get("step")
        name = f"saga {body.get('saga_type')} {body.get('status')}"
    else:
        name = f"{kind or 'message'} send"
    attributes = messaging_attributes(
        operation="send",
        exchange=row.exchange,
        routing_key=row.routing_key,
        message_id=row.message_id,
        saga=saga,
    )
    with producer_span(
        name,
        context_from_traceparent(stored),
        attributes,
        links,
        span_id=span_id_for(producer_key(row.message_id)),
    ) as span:
        yield span
