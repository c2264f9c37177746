"""The compensation path: undoing what a saga did, stage by stage in reverse.

- Compensation begins when a step fails for good (or retries run out) before the saga is
  committed, on a cancel, or at the saga's deadline. Steps waiting for a retry are abandoned;
  unsent commands of running steps are withdrawn; steps still running are awaited until they
  reply or time out, since their reply decides whether they need undoing.
- Every compensatable step that succeeded, or is uncertain (it timed out or was abandoned, so
  it may have had an effect), is compensated. The last stage first; the steps of one group
  in parallel. A stage's compensations all settle before the stage before it begins.
- A compensation's reply: success marks it done; a transient error retries it per the
  compensation policy (longer than a forward step's); a failure, or retries running out,
  stops there and leaves the saga `compensation_failed` for an operator.
- When nothing is left to undo, the saga ends `cancelled` (after a cancel), `compensated`,
  or `failed` when it turned out that nothing had had an effect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contracts import ErrorInfo, Reply, SagaStatus
from coordinator.core import legs
from coordinator.core.draft import Draft
from coordinator.core.legs import COMPENSATION, FORWARD, Direction
from coordinator.core.model import StepState
from coordinator.core.states import CompStatus, StepStatus
from sagas import StepKind

S = SagaStatus
_SETTLED = (CompStatus.DONE, CompStatus.SKIPPED)
_IN_FLIGHT = (CompStatus.RUNNING, CompStatus.RETRY_WAIT)


def needs_compensation(step: StepState) -> bool:
    """Tell whether a step may have had an effect that must be undone."""
    if step.kind is not StepKind.COMPENSATABLE:
        return False
    if step.status is StepStatus.SUCCEEDED:
        return True
    return step.uncertain and step.status in (StepStatus.FAILED, StepStatus.ABANDONED)


def begin(draft: Draft, *, step: str | None = None) -> None:
    """Turn the saga around: abandon waiting retries, withdraw unsent commands, undo."""
    draft.set_phase("compensation")
    draft.set_status(S.COMPENSATING, step=step)
    for other in list(draft.steps.values()):
        if other.status is StepStatus.RETRY_WAIT:
            leg = other.forward.model_copy(update={"status": StepStatus.ABANDONED, "due_at": None})
            legs.move(draft, other, FORWARD, leg, log="abandoned")
        elif other.status is StepStatus.RUNNING and other.forward.command_id:
            draft.withdraw.append(other.forward.command_id)
    advance(draft)


def advance(draft: Draft) -> None:
    """Start the next compensations due, or end the saga when nothing is left to undo."""
    steps = list(draft.steps.values())
    if any(s.status is StepStatus.RUNNING for s in steps):
        return  # awaited: its reply (or deadline) decides whether it needs undoing
    todo = [s for s in steps if needs_compensation(s)]
    open_ = [s for s in todo if s.comp_status not in _SETTLED]
    if not open_:
        if draft.state.cancel_reason is not None:
            draft.set_status(S.CANCELLED)
        elif todo:
            draft.set_status(S.COMPENSATED)
        else:
            draft.set_status(S.FAILED, reason="nothing had an effect, so nothing to undo")
        return
    top = max(s.stage for s in open_)
    current = [s for s in open_ if s.stage == top]
    in_flight = [s for s in current if s.comp_status in _IN_FLIGHT]
    failed = [s for s in current if s.comp_status is CompStatus.FAILED]
    if failed and not in_flight:
        draft.set_error(failed[0].compensation.error)
        draft.set_status(S.COMPENSATION_FAILED, step=failed[0].name)
        return
    starting = [s.name for s in current if s.comp_status is CompStatus.NONE]
    for name in starting:
        legs.start(draft, name, PATH)
    if any(draft.steps[name].comp_status is CompStatus.FAILED for name in starting):
        advance(draft)  # a payload bug failed one at once: settle the stage


class _CompensationPath:
    """What outcomes mean for a compensation."""

    @property
    def direction(self) -> Direction[CompStatus]:
        return COMPENSATION

    def succeeded(self, draft: Draft, name: str, result: dict[str, Any]) -> None:
        legs.finish(draft, name, COMPENSATION, CompStatus.DONE, log="succeeded", error=None)

    def failed(self, draft: Draft, name: str, error: ErrorInfo) -> None:
        legs.finish(
            draft,
            name,
            COMPENSATION,
            CompStatus.FAILED,
            log="failed",
            error=error,
            detail={"error": error.model_dump()},
        )

    def transient(self, draft: Draft, name: str, error: ErrorInfo, *, uncertain: bool) -> None:
        step = draft.steps[name]
        policy = draft.saga.retry_of(draft.planned(name).spec, compensation=True)
        attempt = step.comp_attempt
        started = step.compensation.started_at
        elapsed = draft.at - started if started is not None else timedelta(0)
        if policy.allows(attempt, elapsed):
            due = draft.at + policy.delay(attempt, f"{draft.state.saga_id}/{name}/undo")
            legs.wait_to_retry(draft, name, COMPENSATION, due, error)
            return
        exhausted = ErrorInfo(
            code="retries_exhausted",
            message=f"{attempt} compensation attempts failed; last: {error.code}: {error.message}"[
                :4000
            ],
        )
        self.failed(draft, name, exhausted)

    def late_success(self, draft: Draft, step: StepState, reply: Reply) -> bool:
        return (
            reply.outcome == "succeeded"
            and step.comp_status is CompStatus.RETRY_WAIT
            and reply.attempt <= step.comp_attempt
        )

    def may_retry(self, draft: Draft) -> bool:
        return True


PATH = _CompensationPath()
"""The compensation path, for `legs` functions."""
