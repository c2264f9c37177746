"""How sagas look from outside: the JSON the HTTP API returns for one saga."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordinator.core import StepState
    from coordinator.operations import SagaView


def step_view(step: StepState) -> dict[str, Any]:
    """One step as operators see it: status, attempts, times, last error, result."""
    fwd, comp = step.forward, step.compensation
    duration = None
    if fwd.started_at and fwd.finished_at:
        duration = (fwd.finished_at - fwd.started_at).total_seconds()
    error = comp.error or fwd.error
    return {
        "name": step.name,
        "service": step.service,
        "action": step.action,
        "kind": step.kind.value,
        "status": step.display_status,
        "attempts": fwd.attempt,
        "started_at": fwd.started_at,
        "finished_at": fwd.finished_at,
        "duration_seconds": duration,
        "deadline": step.deadline,
        "retry_due_at": step.due_at,
        "last_error": error.model_dump() if error else None,
        "result": step.result,
        "progress": step.progress,
        "uncertain": step.uncertain,
        "compensation": {
            "action": step.compensation_action,
            "status": comp.status.value,
            "attempts": comp.attempt,
            "started_at": comp.started_at,
            "finished_at": comp.finished_at,
            "note": step.note,
        },
    }


def saga_detail(view: SagaView) -> dict[str, Any]:
    """One saga with its steps, history, trace id, and what it waits for if pending."""
    s = view.state
    return {
        "saga_id": s.saga_id,
        "saga_type": s.saga_type,
        "version": s.definition_version,
        "status": s.status.value,
        "parked": view.parked,
        "phase": s.phase,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "deadline": s.deadline,
        "error": s.error.model_dump() if s.error else None,
        "cancel_reason": s.cancel_reason,
        "cancelled_by": s.cancelled_by,
        "trace_id": s.trace_id,
        "resources": list(s.resources),
        "waiting": view.waiting,
        "input": s.input,
        "steps": [step_view(step) for step in s.steps],
        # Python mode: the API's encoder writes every datetime in its one format.
        "history": [{"id": row.id, **row.entry.model_dump()} for row in view.history],
    }
