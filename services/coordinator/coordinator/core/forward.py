"""The forward path: running a saga's stages one after another.

- Stages run in order; the steps of a stage (a Parallel or ForEach group) start at once, and
  the next stage starts when every step of this one succeeded. The last one completes the saga.
- A success is recorded with its result, validated against the action's result model (an
  invalid result fails the step), and numbered: compensation undoes in reverse of that order.
- A transient error (a `retryable` reply, a passed deadline) schedules the next attempt per
  the step's retry policy; retriable steps (after the commit point) retry without limit. A
  passed deadline makes the step *uncertain*: it may have had an effect nobody saw. While the
  saga compensates, a transient error abandons the step instead.
- A failure for good, or retries running out: before the commit point the saga compensates;
  after it (a retriable step) the saga ends `failed` for an operator, since nothing after the
  pivot is undone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from contracts import ErrorInfo, Reply, SagaStatus
from coordinator.core import compensation, legs
from coordinator.core.draft import Draft
from coordinator.core.legs import FORWARD, Direction
from coordinator.core.model import StepState
from coordinator.core.states import CompStatus, StepStatus
from sagas import StepKind

S = SagaStatus
_LATE = (StepStatus.RUNNING, StepStatus.RETRY_WAIT, StepStatus.ABANDONED)


def advance(draft: Draft) -> None:
    """Start the pending steps of the first unfinished stage, or complete the saga."""
    for stage in sorted({s.stage for s in draft.steps.values()}):
        members = [s for s in draft.steps.values() if s.stage == stage]
        if all(s.status is StepStatus.SUCCEEDED for s in members):
            continue
        for step in members:
            if step.status is StepStatus.PENDING and draft.status is S.RUNNING:
                legs.start(draft, step.name, PATH)
        return
    draft.set_status(S.COMPLETED)


class _ForwardPath:
    """What outcomes mean for a step's own action."""

    @property
    def direction(self) -> Direction[StepStatus]:
        return FORWARD

    def succeeded(self, draft: Draft, name: str, result: dict[str, Any]) -> None:
        step = draft.steps[name]
        model = draft.planned(name).spec.action.RESULT
        try:
            clean = model.model_validate(result).model_dump(mode="json")
        except ValidationError as exc:
            error = ErrorInfo(code="invalid_result", message=f"{step.action} returned {exc}"[:4000])
            self.failed(draft, name, error)
            return
        done = legs.finish(draft, name, FORWARD, StepStatus.SUCCEEDED, log="succeeded", error=None)
        draft.put(done.model_copy(update={"result": clean, "completed_seq": draft.next_seq()}))

    def failed(self, draft: Draft, name: str, error: ErrorInfo) -> None:
        step = legs.finish(
            draft,
            name,
            FORWARD,
            StepStatus.FAILED,
            log="failed",
            error=error,
            detail={"error": error.model_dump()},
        )
        if draft.status is not S.RUNNING:
            return
        draft.set_error(error)
        if step.kind is StepKind.RETRIABLE:
            draft.set_status(S.FAILED, step=name, reason="a step after the commit point failed")
        else:
            compensation.begin(draft, step=name)

    def transient(self, draft: Draft, name: str, error: ErrorInfo, *, uncertain: bool) -> None:
        step = draft.steps[name]
        step = step.model_copy(update={"uncertain": step.uncertain or uncertain})
        draft.put(step)
        policy = draft.saga.retry_of(draft.planned(name).spec, compensation=False)
        if draft.status is S.COMPENSATING:
            leg = step.forward.model_copy(
                update={"status": StepStatus.ABANDONED, "deadline": None, "error": error}
            )
            legs.move(
                draft, step, FORWARD, leg, log="abandoned", detail={"error": error.model_dump()}
            )
        elif step.kind is StepKind.RETRIABLE or policy.allows(step.attempt, _elapsed(draft, step)):
            due = draft.at + policy.delay(step.attempt, f"{draft.state.saga_id}/{name}")
            legs.wait_to_retry(draft, name, FORWARD, due, error)
        else:
            leg = step.forward.model_copy(update={"deadline": None, "error": error})
            draft.put(step.model_copy(update={"forward": leg}))
            exhausted = ErrorInfo(
                code="retries_exhausted",
                message=f"{step.attempt} attempts failed; last: {error.code}: {error.message}"[
                    :4000
                ],
            )
            self.failed(draft, name, exhausted)

    def late_success(self, draft: Draft, step: StepState, reply: Reply) -> bool:
        return (
            reply.outcome == "succeeded"
            and reply.attempt <= step.attempt
            and step.comp_status is CompStatus.NONE
            and step.status in _LATE
        )

    def may_retry(self, draft: Draft) -> bool:
        return draft.status is S.RUNNING


def _elapsed(draft: Draft, step: StepState) -> timedelta:
    started = step.forward.started_at
    return draft.at - started if started is not None else timedelta(0)


PATH = _ForwardPath()
"""The forward path, for `legs` functions."""
