"""The outbox relay: publishes what committed transactions decided, at least once.

Rows are claimed with `FOR UPDATE SKIP LOCKED` in short transactions, so every replica's
relay takes different rows and a crashed relay's rows go back to the others. Each row is
published with confirms (`mandatory` per row: an unroutable command is an error); sent rows
are deleted (or, with a retention, marked sent and purged later), failed ones back off, and a
row that keeps failing is parked dead with its reason, so it never blocks the rows behind it.
The relay wakes at once after a local commit, when the dialect hears of a commit elsewhere
(PostgreSQL NOTIFY), and otherwise polls.

A row carries everything its publish needs, decided when it was written: the relay never
reads a body or a saga's history. A traced row is published in its own PRODUCER span, a
child of the context stored with the row (the coordinator span that decided it), never of
the relay's own; the message carries the producer span's traceparent.

The hot path (PostgreSQL) hands the rows it wrote to `hand_off` once their transaction
committed: they are published at once, without being read back, and the confirmed ones are
deleted (or marked) together, in one statement for all that were confirmed meanwhile. Such rows are
written due only a lease later (`processor.HANDOFF_LEASE`), so no polling relay takes them
while they are in flight here; if this process dies first, the polling relays send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from opentelemetry.trace import INVALID_SPAN, Span
from sqlalchemy.ext.asyncio import AsyncConnection

from convection.failpoints import NONE as NO_FAILPOINTS
from convection.failpoints import Failpoints
from convection.outage import Outage
from convection.tracing import (
    context_from_traceparent,
    inject,
    link_to,
    producer_span,
    recording,
    span_id_for,
)
from convection.transport import Transport
from coordinator.errors import Conflict, StoreUnavailable
from coordinator.failpoints import RELAY_AFTER_CONFIRM, RELAY_BEFORE_PUBLISH
from coordinator.metrics import Metrics
from coordinator.store import OutboxRow, Store
from coordinator.trace import TRACEPARENT, producer_key

logger = logging.getLogger(__name__)

MARK_DELAY = 0.05
"""Seconds the confirmed hand-offs gather before their one statement that deletes (or marks)
them (far below the hand-off lease, after which other relays would send such a row again)."""


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
        retention: timedelta = timedelta(0),
        inbox_retention: timedelta = timedelta(days=7),
        backoff_max: float = 60.0,
        listen: bool = True,
        failpoints: Failpoints = NO_FAILPOINTS,
        database: Outage | None = None,
        max_in_flight: int = 64,
    ) -> None:
        self.store = store
        self.transport = transport
        self.metrics = metrics
        self.batch = batch
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.retention = retention
        # Sent rows are deleted at once unless kept for inspection: nothing of Convection reads
        # them (a message id written again after its row went is not skipped; the inbox, which
        # keeps the ids of the messages that made it, stands in the way of that).
        self._keep_sent = retention > timedelta(0)
        self.inbox_retention = inbox_retention
        self.backoff_max = backoff_max
        self._listen = listen
        self._failpoints = failpoints
        self.database = database or Outage("database", lambda _exc: True)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_maintenance = 0.0
        self._publishing: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._confirmed: list[int] = []
        self._failed: list[tuple[OutboxRow, str]] = []
        self._marks = asyncio.Event()

    def wake(self) -> None:
        """Relay now: called after a commit that wrote outbox rows."""
        self._wake.set()

    async def hand_off(self, rows: Sequence[OutboxRow]) -> None:
        """Publish rows a transaction just committed, now (called right after the commit).

        Returns once the publish has started; while `max_in_flight` batches await their
        confirms it waits for one of them, so a slow broker holds the consumer (whose
        delivery is acked after this) instead of piling rows up in memory.
        """
        await self._slots.acquire()
        task = asyncio.create_task(self._publish_handed(list(rows)), name="outbox-hand-off")
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_handed(self, rows: list[OutboxRow]) -> None:
        try:
            self._failpoints.hit(RELAY_BEFORE_PUBLISH)
            results = await asyncio.gather(*(self._publish(r) for r in rows))
            self._failpoints.hit(RELAY_AFTER_CONFIRM)
        finally:
            self._slots.release()
        for row, error in zip(rows, results, strict=True):
            if error is None:
                self._confirmed.append(row.id)
            else:
                self._failed.append((row, error))
        self._marks.set()

    async def _mark_handed(self) -> None:
        """Settle what was confirmed since the last pass (delete or mark), in one statement."""
        while True:
            await self._marks.wait()
            # Gathered a moment: under load one statement then settles many confirms, not one.
            await asyncio.sleep(MARK_DELAY)
            self._marks.clear()
            try:
                await self._record_handed()
                self.database.recovered()
            except (StoreUnavailable, Conflict) as exc:
                self.database.failed(exc)
                # Kept for the next pass; until then the rows are merely due again later.
                await asyncio.sleep(self.poll_interval)
                self._marks.set()
            except Exception:
                logger.exception("settling handed-off outbox rows failed; retrying")
                await asyncio.sleep(self.poll_interval)
                self._marks.set()

    async def _record_handed(self) -> None:
        sent, self._confirmed = self._confirmed, []
        failed, self._failed = self._failed, []
        try:
            if not failed and self.store.hot is not None:
                # One statement, its own transaction: no BEGIN and COMMIT round trips.
                async with self.store.reading() as conn:
                    settle = self.store.mark_sent_now if self._keep_sent else self.store.forget_sent
                    await settle(conn, sent, alone=True)
            else:
                async with self.store.transaction() as conn:
                    if self._keep_sent:
                        await self.store.mark_sent_now(conn, sent)
                    else:
                        await self.store.forget_sent(conn, sent)
                    if failed:
                        at = await self.store.now(conn)
                        for row, error in failed:
                            await self._count_failure(conn, row, error, at)
        except BaseException:
            # Not recorded: put them back for the next pass (or a republish after the lease).
            self._confirmed[:0] = sent
            self._failed[:0] = failed
            raise
        self.metrics.outbox_sent.inc(len(sent))

    async def start(self) -> None:
        """Start relaying in the background (and listening for other replicas' commits)."""
        self._tasks.append(asyncio.create_task(self._run(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self._mark_handed(), name="outbox-marks"))
        if self._listen:
            listen = self.store.dialect.listen(self.wake, retry_every=self.poll_interval)
            self._tasks.append(asyncio.create_task(listen, name="outbox-listen"))

    async def stop(self) -> None:
        """Stop relaying; rows not sent yet stay for the next relay."""
        if self._publishing:
            # Handed-off rows in flight finish, so they are settled below.
            await asyncio.wait(set(self._publishing), timeout=self.backoff_max)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._confirmed or self._failed:
            try:
                await self._record_handed()
            except Exception as exc:
                logger.warning("could not settle handed-off rows (%r): they go out again", exc)

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
        """Claim one batch, publish it, settle what was sent; return how many were claimed."""
        async with self.store.transaction() as conn:
            at = await self.store.now(conn)
            rows = await self.store.claim_outbox(conn, at, self.batch)
            if not rows:
                return 0
            self.metrics.outbox_polled.inc(len(rows))
            # The rows stay locked while they are published: no other relay sends them.
            self._failpoints.hit(RELAY_BEFORE_PUBLISH)
            results = await asyncio.gather(*(self._publish(r) for r in rows))
            self._failpoints.hit(RELAY_AFTER_CONFIRM)
            sent = [r.id for r, error in zip(rows, results, strict=True) if error is None]
            if self._keep_sent:
                await self.store.mark_sent(conn, sent, at)
            else:
                await self.store.forget_sent(conn, sent)
            self.metrics.outbox_sent.inc(len(sent))
            for row, error in zip(rows, results, strict=True):
                if error is not None:
                    await self._count_failure(conn, row, error, at)
        return len(rows)

    async def _count_failure(
        self, conn: AsyncConnection, row: OutboxRow, error: str, at: datetime
    ) -> None:
        """Back a failed row off, or park it dead once it has failed too often."""
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

    async def _publish(self, row: OutboxRow) -> str | None:
        headers = dict(row.headers)
        try:
            with producer_span_of(row) as span:
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
                self.database.recovered()
            except (StoreUnavailable, Conflict) as exc:
                self.database.failed(exc)  # logged once per outage, not once per pass
            except Exception:
                logger.exception("outbox relay pass failed; retrying after the poll interval")
            if claimed >= self.batch:
                continue  # more rows are due: no need to wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()


@contextlib.contextmanager
def producer_span_of(row: OutboxRow) -> Iterator[Span]:
    """Open the PRODUCER span a row's publish runs in, as decided when the row was written.

    A row of no trace (the coordinator's notes to itself) gets none: a span here would start
    a stray trace of its own.
    """
    if row.span is None or not recording():
        yield INVALID_SPAN
        return
    links = [link for tp in row.span.links for link in link_to(tp)]
    with producer_span(
        row.span.name,
        context_from_traceparent(row.headers.get(TRACEPARENT)),
        dict(row.span.attributes),
        links,
        span_id=span_id_for(producer_key(row.message_id)),
    ) as span:
        yield span
