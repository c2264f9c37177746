"""What forward and compensation have in common: a step's leg, moved through one code path.

A `Direction` says how to read and write one leg of a step and which transitions it may take;
a `Path` (forward or compensation) adds what a success, a failure or a transient error means
in that direction. Starting an attempt, a reply, a heartbeat, a timeout and a due retry are
handled here, once, for both directions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Generic, Literal, Protocol

from contracts import ErrorInfo, Reply
from coordinator.core import commands
from coordinator.core.draft import Draft
from coordinator.core.model import Leg, StatusT, StepState
from coordinator.core.states import CompStatus, StepStatus, check_comp, check_step


class Direction(ABC, Generic[StatusT]):
    """One direction of every step: which leg it is and how that leg may move."""

    name: Literal["forward", "compensation"]
    prefix: Literal["step", "compensation"]
    """The first word of its history kinds: `step.started`, `compensation.failed`, ..."""
    running: StatusT
    retry_wait: StatusT

    @property
    def compensation(self) -> bool:
        """Tell whether this is the compensation direction."""
        return self.name == "compensation"

    @abstractmethod
    def leg(self, step: StepState) -> Leg[StatusT]:
        """Return this direction's leg of `step`."""

    @abstractmethod
    def with_leg(self, step: StepState, leg: Leg[StatusT]) -> StepState:
        """Return `step` with this direction's leg replaced."""

    @abstractmethod
    def check(self, old: StatusT, new: StatusT) -> None:
        """Raise IllegalTransition unless the leg may move from `old` to `new`."""


class _Forward(Direction[StepStatus]):
    name = "forward"
    prefix = "step"
    running = StepStatus.RUNNING
    retry_wait = StepStatus.RETRY_WAIT

    def leg(self, step: StepState) -> Leg[StepStatus]:
        return step.forward

    def with_leg(self, step: StepState, leg: Leg[StepStatus]) -> StepState:
        return step.model_copy(update={"forward": leg})

    def check(self, old: StepStatus, new: StepStatus) -> None:
        check_step(old, new)


class _Compensation(Direction[CompStatus]):
    name = "compensation"
    prefix = "compensation"
    running = CompStatus.RUNNING
    retry_wait = CompStatus.RETRY_WAIT

    def leg(self, step: StepState) -> Leg[CompStatus]:
        return step.compensation

    def with_leg(self, step: StepState, leg: Leg[CompStatus]) -> StepState:
        return step.model_copy(update={"compensation": leg})

    def check(self, old: CompStatus, new: CompStatus) -> None:
        check_comp(old, new)


FORWARD = _Forward()
"""The forward direction: the step's own action."""
COMPENSATION = _Compensation()
"""The compensation direction: the action that undoes the step."""


class Path(Protocol[StatusT]):
    """What an outcome means in one direction (see `forward` and `compensation`)."""

    @property
    def direction(self) -> Direction[StatusT]:
        """The leg this path moves."""

    def succeeded(self, draft: Draft, name: str, result: dict[str, Any]) -> None:
        """The attempt succeeded with `result`."""

    def failed(self, draft: Draft, name: str, error: ErrorInfo) -> None:
        """The attempt failed for good."""

    def transient(self, draft: Draft, name: str, error: ErrorInfo, *, uncertain: bool) -> None:
        """The attempt failed for now (`uncertain`: it may have had an effect)."""

    def late_success(self, draft: Draft, step: StepState, reply: Reply) -> bool:
        """Tell whether a success of an earlier attempt still counts."""

    def may_retry(self, draft: Draft) -> bool:
        """Tell whether a due retry may be sent now."""


def move(
    draft: Draft,
    step: StepState,
    direction: Direction[StatusT],
    leg: Leg[StatusT],
    *,
    log: str | None = None,
    detail: dict[str, Any] | None = None,
) -> StepState:
    """Give `step` its new leg (the transition is checked); log it as `<prefix>.<log>`."""
    old = direction.leg(step)
    direction.check(old.status, leg.status)
    new = direction.with_leg(step, leg)
    draft.put(new)
    if log is not None:
        draft.log(
            f"{direction.prefix}.{log}",
            step=step.name,
            attempt=leg.attempt,
            from_status=old.status,
            to_status=leg.status,
            detail=detail,
        )
    return new


def finish(
    draft: Draft,
    name: str,
    direction: Direction[StatusT],
    status: StatusT,
    *,
    log: str,
    error: ErrorInfo | None,
    detail: dict[str, Any] | None = None,
) -> StepState:
    """End the leg's attempt in `status` at the draft's time, with `error` (None clears it)."""
    step = draft.steps[name]
    leg = direction.leg(step).model_copy(
        update={
            "status": status,
            "finished_at": draft.at,
            "deadline": None,
            "due_at": None,
            "error": error,
        }
    )
    return move(draft, step, direction, leg, log=log, detail=detail)


def wait_to_retry(
    draft: Draft, name: str, direction: Direction[StatusT], due: datetime, error: ErrorInfo
) -> StepState:
    """Park the leg until `due`, when the timers feed RetryDue."""
    step = draft.steps[name]
    leg = direction.leg(step).model_copy(
        update={"status": direction.retry_wait, "due_at": due, "deadline": None, "error": error}
    )
    detail = {"due_at": due.isoformat(), "error": error.model_dump()}
    return move(draft, step, direction, leg, log="retry_scheduled", detail=detail)


def start(draft: Draft, name: str, path: Path[StatusT]) -> None:
    """Send the leg's next attempt; a payload that cannot be built fails the leg at once."""
    direction = path.direction
    step = draft.steps[name]
    old = direction.leg(step)
    attempt = old.attempt + 1
    built = commands.build(draft, step, compensation=direction.compensation, attempt=attempt)
    if isinstance(built, ErrorInfo):
        running = old.model_copy(update={"status": direction.running, "attempt": attempt})
        move(draft, step, direction, running)
        path.failed(draft, name, built)
        return
    draft.send(built)
    leg = old.model_copy(
        update={
            "status": direction.running,
            "attempt": attempt,
            "started_at": old.started_at or draft.at,
            "command_id": built.message_id,
            "deadline": built.deadline,
            "due_at": None,
        }
    )
    detail = {"action": built.action, "command_id": built.message_id}
    move(draft, step, direction, leg, log="started", detail=detail)


def on_reply(draft: Draft, step: StepState, path: Path[StatusT], reply: Reply) -> bool:
    """Apply a reply to the leg it answers; False when it is a duplicate or stale reply."""
    leg = path.direction.leg(step)
    if reply.command_id == leg.command_id and leg.status is path.direction.running:
        if reply.uncertain and not path.direction.compensation and not step.uncertain:
            # It may have left an effect: if it never succeeds, it is compensated all the same.
            step = step.model_copy(update={"uncertain": True})
            draft.put(step)
        match reply.outcome:
            case "progress":
                heartbeat(draft, step, path.direction, reply)
            case "succeeded":
                path.succeeded(draft, step.name, reply.result or {})
            case "failed":
                assert reply.error is not None
                path.failed(draft, step.name, reply.error)
            case "retryable":
                assert reply.error is not None
                path.transient(draft, step.name, reply.error, uncertain=False)
        return True
    if path.late_success(draft, step, reply):
        # An earlier attempt finished after all: same idempotency key, so same effect.
        path.succeeded(draft, step.name, reply.result or {})
        return True
    return False


def heartbeat(draft: Draft, step: StepState, direction: Direction[StatusT], reply: Reply) -> None:
    """A progress reply moves the deadline of the attempt in flight."""
    timeout = draft.planned(step.name).spec.timeout
    leg = direction.leg(step).model_copy(update={"deadline": draft.at + timeout})
    progress = reply.progress.message if reply.progress else None
    draft.put(direction.with_leg(step, leg).model_copy(update={"progress": progress}))


def on_timeout(draft: Draft, step: StepState, path: Path[StatusT], attempt: int) -> bool:
    """A deadline passed: retry per policy, the effect unknown; False when it is stale."""
    leg = path.direction.leg(step)
    if leg.status is not path.direction.running or leg.attempt != attempt:
        return False
    draft.log(f"{path.direction.prefix}.timed_out", step=step.name, attempt=leg.attempt)
    error = ErrorInfo(code="step_timeout", message="no reply or heartbeat before the deadline")
    path.transient(draft, step.name, error, uncertain=True)
    return True


def on_retry_due(draft: Draft, step: StepState, path: Path[StatusT]) -> str | None:
    """Send a due retry; return why not (to ignore the event), or None when sent."""
    leg = path.direction.leg(step)
    if leg.status is not path.direction.retry_wait or leg.due_at is None or draft.at < leg.due_at:
        return "no retry due"
    if not path.may_retry(draft):
        return "the saga is not running"
    start(draft, step.name, path)
    return None
