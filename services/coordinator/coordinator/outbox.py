"""The outbox relay: publishes what committed transactions decided, at least once.

Rows are claimed with `FOR UPDATE SKIP LOCKED` in short transactions, so every replica's
relay takes different rows and a crashed relay's rows go back to the others. Each row is
published with confirms (`mandatory` per row: an unroutable command is an error); sent rows
are marked, failed ones back off, and a row that keeps failing is parked dead with its
reason, so it never blocks the rows behind it. The relay wakes at once after a local commit,
on PostgreSQL NOTIFY from other replicas, and otherwise polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import asyncpg

from convection.transport import Transport
from coordinator.dialect import NOTIFY_CHANNEL, asyncpg_dsn
from coordinator.metrics import Metrics
from coordinator.store import OutboxRow, Store

logger = logging.getLogger(__name__)


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
            # The rows stay locked while they are published: no other relay sends them.
            results = await asyncio.gather(*(self._publish(r) for r in rows))
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

    async def _publish(self, row: OutboxRow) -> str | None:
        try:
            await self.transport.publish(
                row.exchange,
                row.routing_key,
                row.body,
                message_id=row.message_id,
                headers=row.headers,
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
