"""Everything that can happen to a saga: the events the shell feeds to `Engine.decide`.

Each event carries `at`, the database clock's time when it was fed: the engine never reads a
clock. Operator requests carry who asked (`requested_by`), which the history records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts import Reply


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    """When the event happened, by the database clock."""


class LockGranted(_Event):
    """Every resource the saga waits for is now its own."""

    kind: Literal["lock_granted"] = "lock_granted"


class LockQueued(_Event):
    """The saga waits in line for resources another saga holds."""

    kind: Literal["lock_queued"] = "lock_queued"
    waiting_for: tuple[str, ...]
    position: int


class LockRejected(_Event):
    """A resource is held and the saga's policy is to fail rather than wait."""

    kind: Literal["lock_rejected"] = "lock_rejected"
    resource: str
    holder: str


class StepReplied(_Event):
    """A participant replied to a step command."""

    kind: Literal["step_replied"] = "step_replied"
    reply: Reply


class StepTimedOut(_Event):
    """A step attempt's deadline passed without a reply or heartbeat."""

    kind: Literal["step_timed_out"] = "step_timed_out"
    step: str
    attempt: int
    compensation: bool = False


class RetryDue(_Event):
    """A step (or compensation) waiting to be retried is due."""

    kind: Literal["retry_due"] = "retry_due"
    step: str
    compensation: bool = False


class CommandsWithdrawn(_Event):
    """The shell deleted these unsent commands: their steps never reached a participant."""

    kind: Literal["commands_withdrawn"] = "commands_withdrawn"
    command_ids: tuple[str, ...]


class SagaTimedOut(_Event):
    """The saga's own deadline passed."""

    kind: Literal["saga_timed_out"] = "saga_timed_out"


class CancelRequested(_Event):
    """Someone asked to cancel the saga."""

    kind: Literal["cancel_requested"] = "cancel_requested"
    reason: str
    requested_by: str = "api"


class RetryRequested(_Event):
    """An operator asked to resume a failed or compensation_failed saga."""

    kind: Literal["retry_requested"] = "retry_requested"
    reason: str
    requested_by: str


class SkipRequested(_Event):
    """An operator marks one failed compensation as done by hand."""

    kind: Literal["skip_requested"] = "skip_requested"
    step: str
    reason: str
    requested_by: str


class AbandonRequested(_Event):
    """An operator stops driving the saga: nothing more runs, nothing is compensated."""

    kind: Literal["abandon_requested"] = "abandon_requested"
    reason: str
    requested_by: str


Request = CancelRequested | RetryRequested | SkipRequested | AbandonRequested
"""The events someone asks for: the history records who."""

Event = (
    LockGranted
    | LockQueued
    | LockRejected
    | StepReplied
    | StepTimedOut
    | RetryDue
    | CommandsWithdrawn
    | SagaTimedOut
    | CancelRequested
    | RetryRequested
    | SkipRequested
    | AbandonRequested
)
"""Everything that can happen to a saga."""

_EVENTS: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="kind")])


def dump_event(event: Event) -> str:
    """Return an event as JSON, to keep it (a parked event waits for its definition)."""
    return _EVENTS.dump_json(event).decode()


def load_event(data: str | bytes) -> Event:
    """Return the event `dump_event` wrote."""
    return _EVENTS.validate_json(data)
