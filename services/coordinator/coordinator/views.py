"""How sagas look from outside: the JSON the HTTP API returns for one saga."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordinator.core import HistoryEntry, StepState
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


def saga_detail(view: SagaView, *, command_ids: bool = True) -> dict[str, Any]:
    """One saga with its steps, history, trace id, and what it waits for if pending.

    `command_ids=False` leaves the commands' message ids out of the history (for readers).
    """
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
        "locks": view.locks,
        "shared_resources": list(s.shared),
        "input": s.input,
        "steps": [step_view(step) for step in s.steps],
        "history": [_entry(row.id, row.entry, command_ids) for row in view.history],
    }


def _entry(row_id: int, entry: HistoryEntry, command_ids: bool) -> dict[str, Any]:
    # Python mode: the API's encoder writes every datetime in its one format.
    data: dict[str, Any] = {"id": row_id, **entry.model_dump()}
    if not command_ids and isinstance(data.get("detail"), dict):
        data["detail"] = {k: v for k, v in data["detail"].items() if k != "command_id"}
    return data
