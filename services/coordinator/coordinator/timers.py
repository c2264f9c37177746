"""Timers: step deadlines, due retries and saga deadlines, fed to `decide()` on any replica.

Each tick also looks for parked sagas whose definition version this coordinator has, and
feeds their kept events (a replica with an older or newer set of definitions parked them).

Every few ticks it also ends the transactions of replicas stalled inside one (frozen, paused)
for longer than `stalled_after` seconds, whose row locks would otherwise hold up the replicas
that took over their messages (`Store.fence_stalled`).

Each tick reads what is due by the database clock, then feeds each event through the same
transaction path as a message (saga row locked, decide, write). The saga row is taken with
SKIP LOCKED: a saga another replica is advancing is left for the next tick, and the engine
ignores an event that another replica's timer already fed (the deadline or attempt moved).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from convection.outage import Outage
from coordinator.core import (
    CompStatus,
    Event,
    RetryDue,
    SagaState,
    SagaTimedOut,
    StepStatus,
    StepTimedOut,
)
from coordinator.errors import Conflict, StoreUnavailable
from coordinator.metrics import Metrics
from coordinator.processor import Processor
from coordinator.store import StepDue

logger = logging.getLogger(__name__)


def step_event(due: StepDue, at: datetime) -> Event | None:
    """Return the event a due step row stands for, or None."""
    if due.comp_status == CompStatus.RUNNING:
        return StepTimedOut(at=at, step=due.name, attempt=due.comp_attempt, compensation=True)
    if due.comp_status == CompStatus.RETRY_WAIT:
        return RetryDue(at=at, step=due.name, compensation=True)
    if due.comp_status != CompStatus.NONE:
        return None
    if due.status == StepStatus.RUNNING:
        return StepTimedOut(at=at, step=due.name, attempt=due.attempt)
    if due.status == StepStatus.RETRY_WAIT:
        return RetryDue(at=at, step=due.name)
    return None


class Timers:
    """Fires due timers every `interval` seconds until stopped."""

    def __init__(
        self,
        *,
        processor: Processor,
        metrics: Metrics,
        interval: float = 1.0,
        batch: int = 100,
        database: Outage | None = None,
        stalled_after: float = 30.0,
    ) -> None:
        self.database = database or Outage("database", lambda _exc: True)
        self.stalled_after = stalled_after
        self._fenced_at = 0.0
        self.processor = processor
        self.store = processor.store
        self.metrics = metrics
        self.interval = interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start ticking in the background."""
        self._task = asyncio.create_task(self._run(), name="timers")

    async def stop(self) -> None:
        """Stop ticking (a tick in progress is cancelled; its transaction rolls back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> int:
        """Feed every due event once; return how many were applied."""
        async with self.store.reading() as conn:
            at = await self.store.now(conn)
            steps = await self.store.due_steps(conn, at, self.batch)
            sagas = await self.store.due_sagas(conn, at, self.batch)
            known = [(saga.name, saga.version) for saga in self.processor.engine.registry]
            parked = await self.store.parked_sagas(conn, known, self.batch)
        applied = 0
        for due in steps:
            probe = step_event(due, at)
            if probe is None:
                continue
            outcome = await self.processor.feed(due.saga_id, _maker(due), skip_locked=True)
            self.metrics.timers.labels(probe.kind).inc()
            applied += outcome.kind == "applied"
        for saga_id in sagas:
            outcome = await self.processor.feed(
                saga_id, lambda now: SagaTimedOut(at=now), skip_locked=True, after=self._fired
            )
            self.metrics.timers.labels("saga_timed_out").inc()
            applied += outcome.kind == "applied"
        for saga_id in parked:
            outcome = await self.processor.feed_parked(saga_id)
            applied += outcome.kind == "applied"
        return applied

    async def _fired(self, conn: AsyncConnection, state: SagaState) -> None:
        # Feed a saga's deadline once: a committed saga stays live past it, and must finish.
        await self.store.mark_deadline_fired(conn, state.saga_id)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
                await self._fence()
                self.database.recovered()
            except (StoreUnavailable, Conflict) as exc:
                self.database.failed(exc)  # logged once per outage, not once per tick
            except Exception:
                logger.exception("timer tick failed; trying again next tick")
            await asyncio.sleep(self.interval)

    async def _fence(self) -> None:
        # A third of the bound apart: a stalled transaction ends within 4/3 of it.
        if time.monotonic() - self._fenced_at < self.stalled_after / 3:
            return
        self._fenced_at = time.monotonic()
        ended = await self.store.fence_stalled(self.stalled_after)
        if ended:
            logger.warning(
                "ended %d coordinator transaction(s) stalled for over %.0fs (a frozen replica?)",
                ended,
                self.stalled_after,
            )


def _maker(due: StepDue) -> Callable[[datetime], Event]:
    def make(at: datetime) -> Event:
        event = step_event(due, at)
        assert event is not None
        return event

    return make
