"""Building a step's command: its payload from the saga's definition, its ids and deadline.

A payload builder is the saga author's code; if it raises, `build` returns the error as an
`ErrorInfo` (code `payload_error`) and the caller decides what that means for its leg. The
command's id derives from the saga, step, direction, attempt and saga version, so a replayed
decision computes the same id while an operator retry (a later version) gets a new one.
"""

from __future__ import annotations

from contracts import Command, ErrorInfo
from coordinator.core.draft import Draft
from coordinator.core.ids import message_id
from coordinator.core.model import StepState
from coordinator.core.states import StepStatus


def idempotency_key(saga_id: str, step: str, run: int = 0) -> str:
    """Return the key a participant dedupes a step's forward command by, in one run.

    Stable across attempts and redeliveries of a run; an operator retry is a new run, whose
    key is new, so the participant executes the step again instead of answering from the
    outcome it stored for the run before.
    """
    return f"{saga_id}/{step}" if run == 0 else f"{saga_id}/{step}/r{run}"


def undo_key(forward_key: str, run: int = 0) -> str:
    """Return the key of a compensation (in one run) of the forward run keyed `forward_key`."""
    return f"{forward_key}/undo" if run == 0 else f"{forward_key}/undo/r{run}"


def build(
    draft: Draft, step: StepState, *, compensation: bool, attempt: int
) -> Command | ErrorInfo:
    """Return the command of `attempt` of `step` (or of its compensation), or why it failed."""
    planned = draft.planned(step.name)
    saga, state = draft.saga, draft.state
    results = {
        other.name: other.result
        for other in draft.steps.values()
        if other.result is not None and other.status is StepStatus.SUCCEEDED
    }
    try:
        if compensation:
            payload = saga.undo_payload(
                planned, saga_id=state.saga_id, data=draft.data, results=results, own=step.result
            )
        else:
            payload = saga.payload(planned, saga_id=state.saga_id, data=draft.data, results=results)
    except Exception as exc:
        # The builder is the saga author's code: whatever it raises is its step's failure.
        return ErrorInfo(code="payload_error", message=f"{type(exc).__name__}: {exc}"[:4000])
    key = idempotency_key(state.saga_id, step.name, step.forward.run)
    return Command(
        message_id=message_id(
            state.saga_id,
            step.name,
            "undo" if compensation else "do",
            attempt,
            draft.original.version,
        ),
        sent_at=draft.at,
        saga_id=state.saga_id,
        saga_type=state.saga_type,
        step=step.name,
        attempt=attempt,
        compensation=compensation,
        idempotency_key=undo_key(key, step.compensation.run) if compensation else key,
        undoes_key=key if compensation else None,
        deadline=draft.at + planned.spec.timeout,
        service=payload.SERVICE,
        action=payload.ACTION,
        payload=payload.model_dump(mode="json"),
    )
