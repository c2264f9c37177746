"""How sagas look from outside: the JSON the HTTP API returns for one saga."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordinator.model import StepState
    from coordinator.operations import SagaView


def step_view(step: StepState) -> dict[str, Any]:
    """One step as operators see it: status, attempts, times, last error, result."""
    duration = None
    if step.started_at and step.finished_at:
        duration = (step.finished_at - step.started_at).total_seconds()
    error = step.comp_error or step.error
    return {
        "name": step.name,
        "service": step.service,
        "action": step.action,
        "kind": step.kind.value,
        "status": step.display_status,
        "attempts": step.attempt,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "duration_seconds": duration,
        "deadline": step.deadline,
        "retry_due_at": step.due_at,
        "last_error": error.model_dump() if error else None,
        "result": step.result,
        "progress": step.progress,
        "uncertain": step.uncertain,
        "compensation": {
            "action": step.compensation_action,
            "status": step.comp_status.value,
            "attempts": step.comp_attempt,
            "started_at": step.comp_started_at,
            "finished_at": step.comp_finished_at,
            "note": step.note,
        },
    }


def saga_detail(view: SagaView, waiting: dict[str, Any] | None) -> dict[str, Any]:
    """One saga with its steps, history, trace id, and what it waits for if pending."""
    s = view.state
    return {
        "saga_id": s.saga_id,
        "saga_type": s.saga_type,
        "status": s.status.value,
        "phase": s.phase,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "deadline": s.deadline,
        "error": s.error.model_dump() if s.error else None,
        "cancel_reason": s.cancel_reason,
        "cancelled_by": s.cancelled_by,
        "trace_id": s.trace_id,
        "resources": list(s.resources),
        "waiting": waiting,
        "input": s.input,
        "steps": [step_view(step) for step in s.steps],
        "history": [{"id": row.id, **row.entry.model_dump(mode="json")} for row in view.history],
    }
