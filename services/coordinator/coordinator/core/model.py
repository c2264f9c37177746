"""The engine's data: a step's two legs, step and saga state, history entries, the Decision.

Immutable pydantic models, so the store can map them to rows and JSON, and the engine can
never change a state in place by accident. A step has one `Leg` per direction, forward and
compensation, with the same fields, so both directions share one code path in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from contracts import Command, ErrorInfo, SagaEvent, SagaStatus
from coordinator.core.states import CompStatus, StepStatus
from sagas import StepKind

StatusT = TypeVar("StatusT", StepStatus, CompStatus)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Leg(_Frozen, Generic[StatusT]):
    """One direction of a step (its forward action or its compensation): where it is."""

    status: StatusT
    run: int = 0
    """Which run of the leg this is: an operator retry starts the next one (a new
    idempotency key, so the participant executes it again)."""
    attempt: int = 0
    """Attempts started so far in this run."""
    command_id: str | None = None
    """The message id of the last command sent; a reply to it counts while the leg runs."""
    started_at: datetime | None = None
    """When the first attempt started (kept across retries)."""
    finished_at: datetime | None = None
    deadline: datetime | None = None
    """When the attempt in flight times out, unless a heartbeat moves it."""
    due_at: datetime | None = None
    """When the next attempt is due, while the leg waits to retry."""
    error: ErrorInfo | None = None
    """The last error, kept until the leg succeeds."""


def forward_leg() -> Leg[StepStatus]:
    """Return the forward leg of a step that has not started."""
    return Leg[StepStatus](status=StepStatus.PENDING)


def compensation_leg() -> Leg[CompStatus]:
    """Return the compensation leg of a step nobody has undone."""
    return Leg[CompStatus](status=CompStatus.NONE)


_DISPLAY = {
    CompStatus.RUNNING: "compensating",
    CompStatus.RETRY_WAIT: "compensation_retry_wait",
    CompStatus.DONE: "compensated",
    CompStatus.FAILED: "compensation_failed",
    CompStatus.SKIPPED: "compensation_skipped",
}


class StepState(_Frozen):
    """One concrete step of a saga: what it runs, and its forward and compensation legs."""

    name: str
    stage: int
    group: str | None = None
    key: str | None = None
    service: str
    action: str
    kind: StepKind
    compensation_action: str | None = None
    forward: Leg[StepStatus] = forward_leg()
    compensation: Leg[CompStatus] = compensation_leg()
    result: dict[str, Any] | None = None
    uncertain: bool = False
    """An attempt timed out or was abandoned: it may have had an effect nobody saw."""
    completed_seq: int | None = None
    progress: str | None = None
    note: str | None = None

    # Read-only views, for people and tests: the legs hold the data.

    @property
    def status(self) -> StepStatus:
        """The forward leg's status."""
        return self.forward.status

    @property
    def attempt(self) -> int:
        """Forward attempts started so far."""
        return self.forward.attempt

    @property
    def error(self) -> ErrorInfo | None:
        """The forward leg's last error."""
        return self.forward.error

    @property
    def comp_status(self) -> CompStatus:
        """The compensation leg's status."""
        return self.compensation.status

    @property
    def comp_attempt(self) -> int:
        """Compensation attempts started so far."""
        return self.compensation.attempt

    @property
    def undoing(self) -> bool:
        """Tell whether the compensation has begun (its leg is the one that moves now)."""
        return self.compensation.status is not CompStatus.NONE

    @property
    def active(self) -> Leg[StepStatus] | Leg[CompStatus]:
        """The leg that moves now: the compensation once it has begun, else the forward."""
        return self.compensation if self.undoing else self.forward

    @property
    def deadline(self) -> datetime | None:
        """When the attempt in flight (of the active leg) times out."""
        return self.active.deadline

    @property
    def due_at(self) -> datetime | None:
        """When the active leg's next attempt is due."""
        return self.active.due_at

    @property
    def display_status(self) -> str:
        """One word for people: the compensation's status once it has begun, else forward."""
        if not self.undoing:
            return self.forward.status.value
        return _DISPLAY[self.compensation.status]


class SagaState(_Frozen):
    """Everything the engine knows of one saga."""

    saga_id: str
    saga_type: str
    definition_version: int
    status: SagaStatus
    phase: Literal["forward", "compensation"] = "forward"
    input: dict[str, Any]
    resources: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    """The resources among `resources` it holds shared (the others exclusively)."""
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
