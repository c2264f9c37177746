"""What people ask for: cancel a saga, retry a failed one, skip a failed compensation.

The state tables refuse a request in a status where it makes no sense; the handlers here
refuse the finer cases (a cancel after the commit point). A refusal changes nothing but the
history, which records who asked and why.
"""

from __future__ import annotations

from contracts import SagaStatus
from coordinator.core import compensation, flow, legs
from coordinator.core.draft import Draft
from coordinator.core.events import CancelRequested, RetryRequested, SkipRequested
from coordinator.core.legs import COMPENSATION, FORWARD
from coordinator.core.states import CompStatus, StepStatus

S = SagaStatus


def on_cancel_requested(draft: Draft, event: CancelRequested) -> None:
    """Cancel: compensate what ran, unless the saga is committed (it must finish then)."""
    if draft.committed():
        draft.refuse("the saga has passed its pivot and will finish")
        return
    status = draft.status
    if status is S.PENDING and draft.state.phase == "compensation":
        draft.refuse("the saga is already compensating (it waits for its resources to go on)")
        return
    draft.mark_cancelled(event.reason, event.requested_by)
    draft.log("saga.cancel_requested", detail={"reason": event.reason})
    if status is S.PENDING:
        if any(compensation.needs_compensation(s) for s in draft.steps.values()):
            # Undoing needs the resources: stay in line, compensate once they are granted.
            draft.set_phase("compensation")
        else:
            draft.set_status(S.CANCELLED, reason="cancelled while waiting for its resources")
        return
    compensation.begin(draft)


def on_retry_requested(draft: Draft, event: RetryRequested) -> None:
    """Resume a failed saga forward, or a compensation_failed one backward."""
    status = draft.status
    draft.log("operator.retry", detail={"reason": event.reason})
    if status is S.COMPENSATION_FAILED:
        for step in list(draft.steps.values()):
            if step.comp_status is CompStatus.FAILED:
                undo = step.compensation.model_copy(
                    update={"status": CompStatus.NONE, "attempt": 0}
                )
                legs.move(draft, step, COMPENSATION, undo)
    else:
        for step in list(draft.steps.values()):
            if step.status in (StepStatus.FAILED, StepStatus.ABANDONED):
                # A fresh budget of attempts: the operator fixed what made them run out.
                again = step.forward.model_copy(update={"status": StepStatus.PENDING, "attempt": 0})
                legs.move(draft, step, FORWARD, again)
        draft.set_phase("forward")
    draft.set_error(None)
    _resume(draft, S.COMPENSATING if draft.state.phase == "compensation" else S.RUNNING)


def on_skip_requested(draft: Draft, event: SkipRequested) -> None:
    """Mark one failed compensation as done by hand; resume once none is left failed."""
    step = draft.steps.get(event.step)
    if step is None or step.comp_status is not CompStatus.FAILED:
        draft.refuse(f"step {event.step!r} has no failed compensation")
        return
    leg = step.compensation.model_copy(update={"status": CompStatus.SKIPPED})
    skipped = legs.move(draft, step, COMPENSATION, leg)
    draft.put(skipped.model_copy(update={"note": event.reason}))
    draft.log(
        "operator.skip",
        step=step.name,
        from_status=CompStatus.FAILED,
        to_status=CompStatus.SKIPPED,
        detail={"reason": event.reason},
    )
    if any(s.comp_status is CompStatus.FAILED for s in draft.steps.values()):
        return
    draft.set_error(None)
    _resume(draft, S.COMPENSATING)


def _resume(draft: Draft, status: SagaStatus) -> None:
    # A saga with resources takes its locks again first; they were released when it ended.
    if draft.state.resources:
        draft.set_status(S.PENDING)
        draft.acquire = draft.state.resources
    else:
        draft.set_status(status)
        flow.advance(draft)
