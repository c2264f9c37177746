"""What the events of a whole saga do: lock outcomes and the saga's own deadline.

Lock events reach only a saga that waits for its resources (`pending`): the state tables
ignore them elsewhere. A saga granted its resources runs, or compensates when it was
cancelled (or timed out) while it waited with something to undo.
"""

from __future__ import annotations

from contracts import ErrorInfo, SagaStatus
from coordinator.core import compensation, flow
from coordinator.core.draft import Draft
from coordinator.core.events import LockGranted, LockQueued, LockRejected, SagaTimedOut

S = SagaStatus


def on_lock_granted(draft: Draft, _event: LockGranted) -> None:
    """Every resource the saga waits for is its own: go on in the saga's direction."""
    draft.log("lock.granted", detail={"resources": list(draft.state.resources)})
    draft.set_status(S.COMPENSATING if draft.state.phase == "compensation" else S.RUNNING)
    flow.advance(draft)


def on_lock_queued(draft: Draft, event: LockQueued) -> None:
    """The saga waits in line; the history says for what and where."""
    draft.log(
        "lock.waiting", detail={"waiting_for": list(event.waiting_for), "position": event.position}
    )


def on_lock_rejected(draft: Draft, event: LockRejected) -> None:
    """A resource is held and the saga's type rejects waiting: it fails at once."""
    error = ErrorInfo(
        code="resource_busy", message=f"{event.resource} is held by saga {event.holder}"
    )
    draft.set_error(error)
    draft.set_status(S.FAILED, reason="resource busy and the saga type rejects waiting")


def on_saga_timed_out(draft: Draft, event: SagaTimedOut) -> None:
    """The saga's deadline passed: cancel it the way a cancel would, unless it must finish."""
    state = draft.state
    if state.deadline is None or event.at < state.deadline:
        draft.ignore("no saga deadline due")
        return
    error = ErrorInfo(code="saga_timeout", message="the saga's deadline passed")
    # A deadline fires once: clearing it keeps the timers from raising it again.
    draft.clear_deadline()
    undoing = draft.status is S.COMPENSATING or state.phase == "compensation"
    if undoing or draft.committed():
        draft.log("saga.deadline_passed", detail={"action": "none: it must finish"})
    elif draft.status is S.PENDING and any(
        compensation.needs_compensation(s) for s in draft.steps.values()
    ):
        draft.set_error(error)
        draft.set_phase("compensation")
        draft.log(
            "saga.deadline_passed", detail={"action": "compensate once resources are granted"}
        )
    elif draft.status is S.PENDING:
        draft.set_error(error)
        draft.set_status(S.FAILED, reason="deadline passed while waiting for resources")
    else:
        draft.set_error(error)
        compensation.begin(draft)
