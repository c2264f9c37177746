"""Rows to models and back: the one place that knows how a SagaState is laid out in tables.

A step's two legs are stored flat in its row: the forward leg in the unprefixed columns
(`status`, `attempt`, `command_id`, ...), the compensation leg in the same columns prefixed
`comp_`. `state_from_rows(saga_row(s), [step_row(...)...]) == s` for every state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts import ErrorInfo, SagaStatus
from coordinator.core import CompStatus, Leg, SagaState, StepState, StepStatus
from sagas import StepKind


def _error(value: Any) -> ErrorInfo | None:
    return None if value is None else ErrorInfo.model_validate(value)


def _dump(error: ErrorInfo | None) -> dict[str, Any] | None:
    return None if error is None else error.model_dump(mode="json")


_COMP = "comp_"
"""The column prefix of a step's compensation leg (its forward leg has none)."""
_LEG_COLUMNS = ("run", "attempt", "command_id", "deadline", "due_at", "started_at", "finished_at")


def _leg_columns(leg: Leg[StepStatus] | Leg[CompStatus], prefix: str) -> dict[str, Any]:
    out = {f"{prefix}{name}": getattr(leg, name) for name in _LEG_COLUMNS}
    out[f"{prefix}status"] = leg.status.value
    out[f"{prefix}error"] = _dump(leg.error)
    return out


def _leg_fields(row: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    out = {name: row[f"{prefix}{name}"] for name in _LEG_COLUMNS}
    out["error"] = _error(row[f"{prefix}error"])
    return out


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
        "shared_resources": list(state.shared),
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
        **_leg_columns(step.forward, ""),
        **_leg_columns(step.compensation, _COMP),
        "result": step.result,
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
        forward=Leg[StepStatus](status=StepStatus(row["status"]), **_leg_fields(row, "")),
        compensation=Leg[CompStatus](
            status=CompStatus(row[f"{_COMP}status"]), **_leg_fields(row, _COMP)
        ),
        result=row["result"],
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
        shared=tuple(row["shared_resources"] or ()),
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
