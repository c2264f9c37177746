"""Rows to models and back: the one place that knows how a SagaState is laid out in tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts import ErrorInfo, SagaStatus
from coordinator.model import SagaState, StepState
from coordinator.states import CompStatus, StepStatus
from sagas import StepKind


def _error(value: Any) -> ErrorInfo | None:
    return None if value is None else ErrorInfo.model_validate(value)


def _dump(error: ErrorInfo | None) -> dict[str, Any] | None:
    return None if error is None else error.model_dump(mode="json")


def saga_row(state: SagaState) -> dict[str, Any]:
    """Return the `sagas` row of a state (without its steps)."""
    return {
        "id": state.saga_id,
        "type": state.saga_type,
        "definition_version": state.definition_version,
        "status": state.status.value,
        "phase": state.phase,
        "input": state.input,
        "resources": list(state.resources),
        "error": _dump(state.error),
        "cancel_reason": state.cancel_reason,
        "cancelled_by": state.cancelled_by,
        "trace_id": state.trace_id,
        "deadline": state.deadline,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "seq": state.seq,
        "version": state.version,
    }


def step_row(saga_id: str, ordinal: int, step: StepState) -> dict[str, Any]:
    """Return the `saga_steps` row of one step; `ordinal` keeps the steps' order."""
    return {
        "saga_id": saga_id,
        "name": step.name,
        "ordinal": ordinal,
        "stage": step.stage,
        "group_name": step.group,
        "item_key": step.key,
        "service": step.service,
        "action": step.action,
        "kind": step.kind.value,
        "compensation_action": step.compensation_action,
        "status": step.status.value,
        "attempt": step.attempt,
        "comp_status": step.comp_status.value,
        "comp_attempt": step.comp_attempt,
        "command_id": step.command_id,
        "deadline": step.deadline,
        "due_at": step.due_at,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "comp_started_at": step.comp_started_at,
        "comp_finished_at": step.comp_finished_at,
        "result": step.result,
        "error": _dump(step.error),
        "comp_error": _dump(step.comp_error),
        "uncertain": step.uncertain,
        "completed_seq": step.completed_seq,
        "progress": step.progress,
        "note": step.note,
    }


def _step(row: Mapping[Any, Any]) -> StepState:
    return StepState(
        name=row["name"],
        stage=row["stage"],
        group=row["group_name"],
        key=row["item_key"],
        service=row["service"],
        action=row["action"],
        kind=StepKind(row["kind"]),
        compensation_action=row["compensation_action"],
        status=StepStatus(row["status"]),
        attempt=row["attempt"],
        comp_status=CompStatus(row["comp_status"]),
        comp_attempt=row["comp_attempt"],
        command_id=row["command_id"],
        deadline=row["deadline"],
        due_at=row["due_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        comp_started_at=row["comp_started_at"],
        comp_finished_at=row["comp_finished_at"],
        result=row["result"],
        error=_error(row["error"]),
        comp_error=_error(row["comp_error"]),
        uncertain=row["uncertain"],
        completed_seq=row["completed_seq"],
        progress=row["progress"],
        note=row["note"],
    )


def state_from_rows(row: Mapping[Any, Any], steps: Sequence[Mapping[Any, Any]]) -> SagaState:
    """Rebuild a SagaState from its `sagas` row and its `saga_steps` rows (in order)."""
    return SagaState(
        saga_id=row["id"],
        saga_type=row["type"],
        definition_version=row["definition_version"],
        status=SagaStatus(row["status"]),
        phase=row["phase"],
        input=row["input"],
        resources=tuple(row["resources"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deadline=row["deadline"],
        error=_error(row["error"]),
        cancel_reason=row["cancel_reason"],
        cancelled_by=row["cancelled_by"],
        trace_id=row["trace_id"],
        seq=row["seq"],
        version=row["version"],
        steps=tuple(_step(s) for s in steps),
    )
