"""What operators do to sagas: look at them, cancel, retry, skip a failed compensation.

The later HTTP API and the CLI call these; each change runs through the same transaction
path as a message, so an operator's verb and a participant's reply never race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.model import CancelRequested, RetryRequested, SagaState, SkipRequested
from coordinator.processor import Outcome, Processor
from coordinator.store import HistoryRow


@dataclass(frozen=True)
class SagaView:
    """A saga's current state and its whole audit log."""

    state: SagaState
    history: list[HistoryRow]


class Operations:
    """Operator verbs and queries over one coordinator's store."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.store = processor.store

    async def cancel(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Ask to cancel a saga; `refused` when it passed its pivot or has ended."""
        return await self.processor.feed(
            saga_id, lambda at: CancelRequested(at=at, reason=reason, requested_by=requested_by)
        )

    async def retry(self, saga_id: str, reason: str, requested_by: str = "api") -> Outcome:
        """Resume a failed or compensation_failed saga."""
        return await self.processor.feed(
            saga_id, lambda at: RetryRequested(at=at, reason=reason, requested_by=requested_by)
        )

    async def skip(
        self, saga_id: str, step: str, reason: str, requested_by: str = "api"
    ) -> Outcome:
        """Mark one failed compensation as done by hand."""
        return await self.processor.feed(
            saga_id,
            lambda at: SkipRequested(at=at, step=step, reason=reason, requested_by=requested_by),
        )

    async def get_saga(self, saga_id: str) -> SagaView | None:
        """Return a saga's state and history, or None if there is no such saga."""
        async with self.store.engine.connect() as conn:
            state = await self.store.load(conn, saga_id)
            if state is None:
                return None
            return SagaView(state, await self.store.history(conn, saga_id))

    async def list_sagas(
        self,
        *,
        status: str | None = None,
        saga_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return summaries (id, type, status, trace_id, created_at, updated_at), newest first."""
        async with self.store.engine.connect() as conn:
            return await self.store.list_sagas(
                conn, status=status, saga_type=saga_type, limit=limit, offset=offset
            )
