"""The one face of a running coordinator for people and tools (the API, the CLI through it).

Start, cancel, retry, skip, abandon, list, get and stats.

The HTTP API (and through it the CLI) calls only these. Every change runs through the same
transaction path as a message, so an operator's verb and a participant's reply never race.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from contracts import SagaStatus, StartSaga
from coordinator.core import (
    AbandonRequested,
    CancelRequested,
    RetryRequested,
    SagaState,
    SkipRequested,
)
from coordinator.outcome import Outcome
from coordinator.processor import Processor
from coordinator.store import HistoryRow, SagaFilter, overview, queries
from coordinator.store.queries import Position
from coordinator.trace import saga_start_span
from sagas import Registry


@dataclass(frozen=True)
class SagaView:
    """A saga's current state, its whole audit log, and what it waits for if pending."""

    state: SagaState
    history: list[HistoryRow]
    waiting: dict[str, Any] | None = None
    locks: dict[str, Any] = field(default_factory=dict)
    """The queue of each of its resources: holders and waiters in order, with their mode."""
    parked: str | None = None
    """Why its events wait (`definition_missing: <type>@<version>`), or None."""


@dataclass(frozen=True)
class Started:
    """The answer to a start: the saga, and whether it was created, existed, or was refused."""

    saga_id: str
    kind: Literal["created", "exists", "conflict", "rejected"]
    status: SagaStatus | None = None
    reason: str = ""
    """For `rejected`: unknown_saga_type or invalid_input; for `conflict`: why."""
    note: str = ""
    errors: tuple[dict[str, Any], ...] = field(default=())
    """For invalid_input: the input's field errors."""


@dataclass(frozen=True)
class SagaPage:
    """One page of a saga list, and where the next one starts (None: this is the last)."""

    items: list[dict[str, Any]]
    next_after: Position | None


class Operations:
    """Operator verbs and queries over one coordinator's processor and store."""

    def __init__(self, processor: Processor, registry: Registry) -> None:
        self._processor = processor
        self._store = processor.store
        self._registry = registry

    async def start(
        self,
        saga_type: str,
        input: dict[str, Any],
        *,
        saga_id: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        requested_by: str = "api",
    ) -> Started:
        """Start a saga; the same id (or Idempotency-Key) with the same input is the same saga.

        `headers` may carry a W3C `traceparent`: the saga then continues the caller's trace.
        """
        if saga_id is None and idempotency_key:
            saga_id = "idem-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        saga_id = saga_id or uuid.uuid4().hex
        msg = StartSaga(saga_type=saga_type, saga_id=saga_id, input=input)
        with saga_start_span(saga_type, saga_id, headers or {}, {}) as trace_id:
            outcome = await self._processor.start_saga(
                msg, trace_id=trace_id, requested_by=requested_by
            )
        if outcome.kind == "rejected" and outcome.reason == "conflict":
            note = "this Idempotency-Key was used with another body" if idempotency_key else ""
            return Started(saga_id, "conflict", reason="conflict", note=note or outcome.note)
        if outcome.kind == "rejected":
            return Started(
                saga_id, "rejected", reason=outcome.reason, note=outcome.note, errors=outcome.errors
            )
        if outcome.kind == "applied":
            return Started(saga_id, "created", outcome.status)
        return Started(saga_id, "exists", outcome.status)

    async def abandon(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Stop driving a saga without compensating (an operator takes over by hand)."""
        return await self._processor.feed(
            saga_id, lambda at: AbandonRequested(at=at, reason=reason, requested_by=requested_by)
        )

    async def cancel(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Ask to cancel a saga; `refused` when it passed its pivot or has ended."""
        return await self._processor.feed(
            saga_id, lambda at: CancelRequested(at=at, reason=reason, requested_by=requested_by)
        )

    async def retry(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Resume a failed or compensation_failed saga."""
        return await self._processor.feed(
            saga_id, lambda at: RetryRequested(at=at, reason=reason, requested_by=requested_by)
        )

    async def skip(
        self, saga_id: str, step: str, reason: str, requested_by: str = "api"
    ) -> Outcome:
        """Mark one failed compensation as done by hand."""
        return await self._processor.feed(
            saga_id,
            lambda at: SkipRequested(at=at, step=step, reason=reason, requested_by=requested_by),
        )

    async def get_saga(self, saga_id: str) -> SagaView | None:
        """Return a saga's state, history and lock position, or None if there is no such saga."""
        async with self._store.reading() as conn:
            found = await self._store.load_parked(conn, saga_id)
            if found is None:
                return None
            state, parked = found
            history = await self._store.history(conn, saga_id)
            wait = await queries.waiting(conn, saga_id) if state.resources else None
            held = await queries.lock_queues(conn, saga_id) if state.resources else {}
        return SagaView(state, history, wait, held, parked)

    async def list_sagas(self, f: SagaFilter) -> SagaPage:
        """Return a page of saga summaries, newest first, with the step each is busy with."""
        async with self._store.reading() as conn:
            now = await self._store.now(conn)
            # One more than asked tells whether another page follows.
            rows = await self._store.list_sagas(conn, replace(f, limit=f.limit + 1), now)
        items = rows[: f.limit]
        more = len(rows) > f.limit and items
        last = items[-1] if more else None
        return SagaPage(items, (last["created_at"], last["saga_id"]) if last else None)

    async def stats(self, window: timedelta) -> dict[str, Any]:
        """Per saga type and per step, over the last `window`: counts, rates, durations."""
        async with self._store.reading() as conn:
            now = await self._store.now(conn)
            return await queries.stats(conn, now, window)

    async def counts(self) -> dict[str, int]:
        """Return how many sagas are in each status (every status, zero included)."""
        async with self._store.reading() as conn:
            found = await queries.count_by_status(conn)
        return {s.value: found.get(s, 0) for s in SagaStatus}

    async def locks(self) -> list[dict[str, Any]]:
        """Return every resource's lock queue: holders and waiters with mode and saga."""
        async with self._store.reading() as conn:
            return await overview.all_locks(conn)

    async def series(self, window: timedelta, buckets: int = 30) -> dict[str, Any]:
        """Per saga type, the last `window` in `buckets` slices: started, ended, p95 duration."""
        async with self._store.reading() as conn:
            now = await self._store.now(conn)
            return {"now": now, "types": await overview.series(conn, now, window, buckets)}

    async def instances(self) -> dict[tuple[str, int], dict[str, int]]:
        """Per saga type and version: sagas in all (`total`) and still unfinished (`live`)."""
        async with self._store.reading() as conn:
            return await overview.instances(conn)

    async def service_errors(self, window: timedelta) -> dict[str, dict[str, int]]:
        """Per participant service over the last `window`: legs finished, failed, retried."""
        async with self._store.reading() as conn:
            now = await self._store.now(conn)
            return await overview.service_errors(conn, now, window)
