"""What people ask for: cancel a saga, retry a failed one, skip a failed compensation.

The state tables refuse a request in a status where it makes no sense; the handlers here
refuse the finer cases (a cancel after the commit point). A refusal changes nothing but the
history, which records who asked and why.
"""

from __future__ import annotations

from contracts import SagaStatus
from coordinator.core import compensation, flow, legs
from coordinator.core.draft import Draft
from coordinator.core.events import (
    AbandonRequested,
    CancelRequested,
    RetryRequested,
    SkipRequested,
)
from coordinator.core.legs import COMPENSATION, FORWARD
from coordinator.core.model import Leg, StatusT
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
    retried: list[str] = []
    if status is S.COMPENSATION_FAILED:
        for step in list(draft.steps.values()):
            if step.comp_status is CompStatus.FAILED:
                # A new run: new key (the participant runs the undo again), fresh attempts.
                undo = _next_run(step.compensation, CompStatus.NONE, new_key=True)
                legs.move(draft, step, COMPENSATION, undo)
                retried.append(step.name)
    else:
        for step in list(draft.steps.values()):
            if step.status in (StepStatus.FAILED, StepStatus.ABANDONED):
                # An uncertain step keeps its key: an earlier attempt may have had an effect,
                # and only under the same key can the participant tell it did.
                again = _next_run(step.forward, StepStatus.PENDING, new_key=not step.uncertain)
                legs.move(draft, step, FORWARD, again)
                retried.append(step.name)
        draft.set_phase("forward")
    draft.log("operator.retry", detail={"reason": event.reason, "steps": retried})
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


def on_abandon_requested(draft: Draft, event: AbandonRequested) -> None:
    """Stop driving the saga for good: the operator takes over by hand, nothing is undone.

    Commands not sent yet are withdrawn; replies still in flight will be ignored (the saga
    has ended); its locks are released like at any end.
    """
    draft.log("operator.abandon", detail={"reason": event.reason})
    for step in list(draft.steps.values()):
        if step.comp_status is CompStatus.RUNNING and step.compensation.command_id:
            draft.withdraw.append(step.compensation.command_id)
        if step.status in (StepStatus.RUNNING, StepStatus.RETRY_WAIT):
            if step.status is StepStatus.RUNNING and step.forward.command_id:
                draft.withdraw.append(step.forward.command_id)
            # Nobody waits for it any more: its outcome is the operator's to find out.
            leg = step.forward.model_copy(
                update={"status": StepStatus.ABANDONED, "deadline": None, "due_at": None}
            )
            moved = legs.move(draft, step, FORWARD, leg, log="abandoned")
            draft.put(moved.model_copy(update={"uncertain": True}))
    draft.set_status(S.ABANDONED, reason=event.reason)


def _next_run(leg: Leg[StatusT], status: StatusT, *, new_key: bool) -> Leg[StatusT]:
    return leg.model_copy(
        update={
            "status": status,
            "run": leg.run + 1 if new_key else leg.run,
            "attempt": 0,
            "started_at": None,
            "finished_at": None,
            "deadline": None,
            "due_at": None,
            "error": None,
        }
    )


def _resume(draft: Draft, status: SagaStatus) -> None:
    # A saga with resources takes its locks again first; they were released when it ended.
    if draft.state.resources:
        draft.set_status(S.PENDING)
        draft.acquire = draft.state.resources
    else:
        draft.set_status(status)
        flow.advance(draft)
