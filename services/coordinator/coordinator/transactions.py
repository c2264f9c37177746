"""The transactions a `Processor` runs its bodies in: alone, retried, or in a group commit.

A body reads and writes through one `Unit` (the connection, the database time, and what to
do once the transaction committed: hand rows to the relay, count metrics, wake the relay).
A conflict or a lost connection retries the whole transaction, bounded, with jittered
backoff. Starts and replies may share a transaction with other messages
(`coordinator.group_commit`); everything else runs alone.

A start or a reply that runs alone on PostgreSQL first tries its optimistic body (`Work.fast`):
a read without lock or transaction, then one statement that writes the decision and claims
the message id only if the saga is still as read (`coordinator.store.hot`). Two round trips
instead of four (BEGIN, read, write, COMMIT), which is most of what one message at a time waits
for. When the saga moved, the message id is claimed already, the database is unreachable, or
the decision needs more than one statement (locks, withdrawn commands, a parked saga), the
optimistic body writes nothing and the locking body runs, with its retries.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from convection.failpoints import NONE as NO_FAILPOINTS
from convection.failpoints import Failpoints
from coordinator.core import SagaState
from coordinator.errors import Conflict, StoreUnavailable
from coordinator.failpoints import BEFORE_COMMIT
from coordinator.group_commit import GroupCommit
from coordinator.metrics import Metrics
from coordinator.outcome import Outcome
from coordinator.store import OutboxRow, Store

logger = logging.getLogger(__name__)

UNTIMED = datetime.min.replace(tzinfo=UTC)
"""The time of a unit whose first statement (the hot path's read) takes the clock itself."""


@dataclass
class Unit:
    """One transaction's connection, database time, and what to do once it committed."""

    conn: AsyncConnection
    at: datetime
    queued: int = 0
    handed: list[OutboxRow] = field(default_factory=list)
    """Outbox rows to hand to the relay once the unit committed (the hot path's)."""
    changes: list[tuple[SagaState | None, SagaState]] = field(default_factory=list)
    """What each applied decision changed, counted in the metrics once it committed."""
    parked: int = 0


Body = Callable[[Unit], Coroutine[Any, Any, Outcome]]
"""A transaction's work: reads and writes through the unit, returns what it did."""
FastBody = Callable[[Unit], Coroutine[Any, Any, Outcome | None]]
"""An optimistic body: its unit has no transaction; None means it wrote nothing, go locking."""
_RETRIED = (Conflict, StoreUnavailable)


@dataclass(frozen=True, slots=True)
class Work:
    """A message's locking body, and the optimistic one to try first when it runs alone."""

    body: Body
    fast: FastBody | None = None


class Transactions:
    """Runs bodies in transactions: alone with retries, or grouped with other messages."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        on_commit: Callable[[], None],
        hand_off: Callable[[Sequence[OutboxRow]], Awaitable[None]] | None,
        max_attempts: int,
        failpoints: Failpoints = NO_FAILPOINTS,
        group: tuple[int, int] | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.failpoints = failpoints
        self._on_commit = on_commit
        self._hand_off = hand_off
        self._max_attempts = max_attempts
        self.group: GroupCommit[Work, Outcome] | None = None
        """The group commit of starts and replies, or None (each message alone)."""
        if group is not None:
            self.group = GroupCommit(
                self._once_many, self._run_alone, lanes=group[0], most=group[1]
            )

    async def _run(
        self,
        body: Body,
        *,
        timed: bool = True,
        group: str | None = None,
        fast: FastBody | None = None,
    ) -> Outcome:
        """Run `body` in a transaction, retried on conflicts; `timed=False`: it takes the clock.

        `group`: the saga id, when the body may share a transaction (and `timed` is False).
        `fast`: the optimistic body tried first when the message runs alone (`timed` False).
        """
        if group is not None and self.group is not None:
            return await self.group.submit(group, Work(body, fast))
        if fast is not None and (outcome := await self._optimistic(fast)) is not None:
            return outcome
        try:
            return await self._once(body, timed)
        except _RETRIED as exc:
            self._retrying_after(1, exc)
        # Only a failed first attempt pays for the retry machinery.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts - 1),
            wait=wait_exponential_jitter(multiplier=0.02, max=1.0, jitter=0.05),
            retry=retry_if_exception_type(_RETRIED),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(body, timed)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _run_alone(self, work: Work) -> Outcome:
        return await self._run(work.body, timed=False, fast=work.fast)

    async def _optimistic(self, fast: FastBody) -> Outcome | None:
        """Run an optimistic body on a connection without a transaction; None: it wrote nothing."""
        if self.store.hot is None:
            return None
        try:
            async with self.store.reading() as conn:
                unit = Unit(conn, UNTIMED)
                outcome = await fast(unit)
        except _RETRIED as exc:
            # Whether or not its write reached the database, the locking body finds out.
            logger.debug("optimistic attempt gave way to the locking one: %s", exc)
            self.metrics.optimistic.labels("gave_way").inc()
            return None
        if outcome is None:
            # Not a conflict: a decision one statement cannot hold, or a case to look at again.
            self.metrics.optimistic.labels("declined").inc()
            return None
        self.metrics.optimistic.labels("written" if unit.changes else outcome.kind).inc()
        await self._committed(unit)
        return outcome

    async def _once(self, body: Body, timed: bool) -> Outcome:
        async with self.store.transaction() as conn:
            unit = Unit(conn, await self.store.now(conn) if timed else UNTIMED)
            outcome = await body(unit)
            if unit.changes:
                self.failpoints.hit(BEFORE_COMMIT)
        await self._committed(unit)
        return outcome

    async def _once_many(self, works: Sequence[tuple[Work, contextvars.Context]]) -> list[Outcome]:
        """Run untimed bodies one after another in one transaction (a group commit)."""
        outcomes: list[Outcome] = []
        async with self.store.transaction() as conn:
            unit = Unit(conn, UNTIMED)
            for work, context in works:
                unit.at = UNTIMED
                # In its caller's context, so what it writes hangs under its caller's span.
                outcomes.append(await asyncio.create_task(work.body(unit), context=context))
            if unit.changes:
                self.failpoints.hit(BEFORE_COMMIT)
        await self._committed(unit)
        return outcomes

    async def _committed(self, unit: Unit) -> None:
        if unit.handed and self._hand_off is not None:
            await self._hand_off(unit.handed)
        # Counted after the commit: a transaction retried after a conflict counts once.
        for previous, state in unit.changes:
            self.metrics.record(previous, state)
        if unit.parked:
            self.metrics.parked.inc(unit.parked)
        if unit.queued:
            self._on_commit()

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._retrying_after(state.attempt_number + 1, exc)

    def _retrying_after(self, attempt: int, exc: BaseException | None) -> None:
        self.metrics.transaction_retries.inc()
        logger.warning("transaction attempt %d failed: %s; retrying", attempt, exc)
