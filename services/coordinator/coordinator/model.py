"""The engine's data: saga and step state, the events fed to `decide`, and its Decision.

Immutable pydantic models, so the store can write them as rows and JSON without a mapping
layer of its own, and the engine can never change a state in place by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts import Command, ErrorInfo, Reply, SagaEvent, SagaStatus
from coordinator.states import CompStatus, StepStatus
from sagas import StepKind


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepState(_Frozen):
    """One concrete step of a saga: its forward action and its compensation."""

    name: str
    stage: int
    group: str | None = None
    key: str | None = None
    service: str
    action: str
    kind: StepKind
    compensation_action: str | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    """Forward attempts started so far."""
    comp_status: CompStatus = CompStatus.NONE
    comp_attempt: int = 0
    command_id: str | None = None
    """The message id of the command awaiting a reply (forward or compensation)."""
    deadline: datetime | None = None
    due_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    comp_started_at: datetime | None = None
    comp_finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    comp_error: ErrorInfo | None = None
    uncertain: bool = False
    """An attempt timed out or was abandoned: it may have had an effect nobody saw."""
    completed_seq: int | None = None
    progress: str | None = None
    note: str | None = None

    @property
    def display_status(self) -> str:
        """One word for people: the compensation's status once it has begun, else forward."""
        if self.comp_status is CompStatus.NONE:
            return self.status.value
        return {
            CompStatus.RUNNING: "compensating",
            CompStatus.RETRY_WAIT: "compensation_retry_wait",
            CompStatus.DONE: "compensated",
            CompStatus.FAILED: "compensation_failed",
            CompStatus.SKIPPED: "compensation_skipped",
        }[self.comp_status]


class SagaState(_Frozen):
    """Everything the engine knows of one saga."""

    saga_id: str
    saga_type: str
    definition_version: int
    status: SagaStatus
    phase: Literal["forward", "compensation"] = "forward"
    input: dict[str, Any]
    resources: tuple[str, ...] = ()
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    trace_id: str | None = None
    seq: int = 0
    version: int = 0
    """Incremented by every decision that changes the saga: a row version."""
    steps: tuple[StepState, ...]

    def step(self, name: str) -> StepState | None:
        """Return the step called `name`, or None."""
        for step in self.steps:
            if step.name == name:
                return step
        return None


class _Event(_Frozen):
    at: datetime
    """When the event happened, by the database clock: the engine never reads a clock."""


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


class CancelRequested(_Event):
    """Someone asked to cancel the saga."""

    kind: Literal["cancel_requested"] = "cancel_requested"
    reason: str
    requested_by: str = "api"


class CommandsWithdrawn(_Event):
    """The shell deleted these unsent commands: their steps never reached a participant."""

    kind: Literal["commands_withdrawn"] = "commands_withdrawn"
    command_ids: tuple[str, ...]


class SagaTimedOut(_Event):
    """The saga's own deadline passed."""

    kind: Literal["saga_timed_out"] = "saga_timed_out"


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


Event = (
    LockGranted
    | LockQueued
    | LockRejected
    | StepReplied
    | StepTimedOut
    | RetryDue
    | CancelRequested
    | CommandsWithdrawn
    | SagaTimedOut
    | RetryRequested
    | SkipRequested
)
"""Everything that can happen to a saga."""


class HistoryEntry(_Frozen):
    """One line of the audit log: what changed, when, and why."""

    at: datetime
    kind: str
    """e.g. saga.status, step.started, step.succeeded, compensation.failed, operator.skip."""
    step: str | None = None
    attempt: int | None = None
    from_status: str | None = None
    to_status: str | None = None
    cause: str
    """The event that caused it (its kind)."""
    detail: dict[str, Any] = {}
    actor: str | None = None


Verdict = Literal["applied", "ignored", "refused"]
"""applied: the state changed; ignored: a duplicate or stale event; refused: not allowed now."""


@dataclass(frozen=True)
class Decision:
    """What `decide` returns: the new state and everything the shell must write with it."""

    state: SagaState
    verdict: Verdict = "applied"
    note: str = ""
    commands: tuple[Command, ...] = ()
    events: tuple[SagaEvent, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    acquire: tuple[str, ...] = ()
    """Resources the shell must ask the lock table for, then feed back LockGranted/Queued."""
    release: bool = False
    """The saga is done with its resources: the shell releases them and wakes the next."""
    withdraw: tuple[str, ...] = field(default=())
    """Command ids the shell deletes if the relay has not sent them yet, then feeds back
    CommandsWithdrawn: a cancel cuts across a deep queue instead of waiting behind it."""
