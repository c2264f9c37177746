"""Moving a saga on after an event: forward while it runs, backward while it compensates."""

from __future__ import annotations

from contracts import SagaStatus
from coordinator.core import compensation, forward
from coordinator.core.draft import Draft


def advance(draft: Draft) -> None:
    """Start whatever is due next in the saga's current direction (or end the saga)."""
    if draft.status is SagaStatus.RUNNING:
        forward.advance(draft)
    elif draft.status is SagaStatus.COMPENSATING:
        compensation.advance(draft)
