"""Messages about whole sagas: StartSaga, CancelSaga, the lifecycle SagaEvent, wake-ups."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.base import ErrorInfo, Identifier, JsonObject, Message, Name, UtcDatetime


class SagaStatus(StrEnum):
    """Where a saga is in its life; the last six are terminal."""

    PENDING = "pending"
    """Waiting in FIFO order for a resource another saga holds."""
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"
    """Ended without success and with nothing left to compensate (or after the pivot)."""
    COMPENSATION_FAILED = "compensation_failed"
    """A compensation ran out of retries: an operator must retry or skip it."""
    CANCELLED = "cancelled"
    """Cancelled, and every completed step compensated."""
    ABANDONED = "abandoned"
    """An operator took over by hand: not driven any more, nothing compensated."""

    @property
    def terminal(self) -> bool:
        """Tell whether a saga in this status never changes again on its own."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        SagaStatus.COMPLETED,
        SagaStatus.COMPENSATED,
        SagaStatus.FAILED,
        SagaStatus.COMPENSATION_FAILED,
        SagaStatus.CANCELLED,
        SagaStatus.ABANDONED,
    }
)
"""Statuses in which a saga stays until an operator acts."""


class StartSaga(Message):
    """Ask the coordinator to start a saga; publish to `convection.sagas` with key `saga.start`."""

    type: Literal["saga.start"] = "saga.start"
    saga_type: Name
    saga_id: Identifier | None = None
    """Chosen by the caller to make the start idempotent; generated when absent."""
    input: JsonObject = Field(default_factory=dict)


class CancelSaga(Message):
    """Ask the coordinator to cancel a saga; publish with routing key `saga.cancel`."""

    type: Literal["saga.cancel"] = "saga.cancel"
    saga_id: Identifier
    reason: str = Field(min_length=1, max_length=1000)
    requested_by: str = Field(default="api", max_length=200)


class WakeSaga(Message):
    """The coordinator's note to itself that a resource a waiting saga needs was granted."""

    type: Literal["saga.wake"] = "saga.wake"
    saga_id: Identifier
    resource: str = Field(min_length=1, max_length=300)


REJECTED: Literal["rejected"] = "rejected"
"""The status of a lifecycle event that refuses a StartSaga: no saga was created. `error`
says why (its code is the dead-letter reason, e.g. unknown_saga_type, invalid_input)."""


class SagaEvent(Message):
    """A lifecycle event on `convection.events`, routing key `saga.<saga_type>.<status>`."""

    type: Literal["saga.event"] = "saga.event"
    saga_id: Identifier
    saga_type: Name
    status: SagaStatus | Literal["rejected"]
    step: str | None = None
    error: ErrorInfo | None = None
    trace_id: str | None = None
    at: UtcDatetime
