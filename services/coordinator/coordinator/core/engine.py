"""The pure saga engine: `Engine.start` and `Engine.decide(state, event) -> Decision`.

No I/O, no clock, no environment: the shell feeds events stamped with the database clock and
writes what the engine decided. Where things are, by concern:

- `states`: statuses, the transition tables, and what each event does in each saga status
  (handled, ignored or refused);
- `on_saga`, `on_steps`, `on_requests`: one handler per event kind, named after it;
- `forward`, `compensation`: what success, failure and transient errors mean each way;
- `legs`: what both directions share (start an attempt, a reply, a heartbeat, a timeout);
- `commands`: building a command from the saga's definition;
- `draft`: the decision being built; `model`, `events`: the data.

Rules, in the order a saga meets them, are told in `forward` and `compensation`. Resources:
a saga that declares resources asks the lock table for them when it starts and waits in FIFO
order (or is rejected, or supersedes the holder, by its type's policy); `locks` decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never

from pydantic import ValidationError

from contracts import SagaStatus
from coordinator.core import flow, on_requests, on_saga, on_steps
from coordinator.core.draft import Draft
from coordinator.core.events import (
    AbandonRequested,
    CancelRequested,
    CommandsWithdrawn,
    Event,
    LockGranted,
    LockQueued,
    LockRejected,
    RetryDue,
    RetryRequested,
    SagaTimedOut,
    SkipRequested,
    StepReplied,
    StepTimedOut,
)
from coordinator.core.model import Decision, SagaState, StepState
from coordinator.core.rules import rule
from coordinator.errors import DefinitionMissing, InvalidInput, UnknownSagaType
from sagas import PlannedStep, Registry

S = SagaStatus


class Engine:
    """Decides what happens to a saga next; holds only the registry of saga types.

    A new saga starts on its type's newest loaded version and stays on it to the end.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def start(
        self,
        *,
        saga_type: str,
        saga_id: str,
        input: dict[str, Any],
        at: datetime,
        trace_id: str | None = None,
        requested_by: str = "api",
    ) -> Decision:
        """Create a saga: pending on its resources, or already running if it holds none.

        Raises:
            UnknownSagaType: The registry has no such saga type.
            InvalidInput: The input does not validate against the saga's input model.
        """
        if saga_type not in self.registry:
            raise UnknownSagaType(
                f"unknown saga type {saga_type!r}; known: {', '.join(self.registry.names())}"
            )
        saga = self.registry.latest(saga_type)
        try:
            data = saga.parse_input(input)
        except ValidationError as exc:
            errors = [dict(e) for e in exc.errors(include_url=False, include_context=False)]
            raise InvalidInput(f"input of {saga_type} is invalid: {exc}", errors) from exc
        state = SagaState(
            saga_id=saga_id,
            saga_type=saga_type,
            definition_version=saga.version,
            status=S.PENDING,
            input=data.model_dump(mode="json"),
            resources=saga.resources_of(data),
            shared=saga.shared_of(data),
            created_at=at,
            updated_at=at,
            deadline=at + saga.timeout if saga.timeout else None,
            trace_id=trace_id,
            steps=tuple(_step_state(p) for p in saga.plan(data)),
        )
        draft = Draft(saga, state, at, "start", requested_by)
        created = {"resources": list(state.resources), "version": saga.version}
        draft.log("saga.created", to_status=S.PENDING, detail=created)
        draft.events.append(draft.lifecycle_event(S.PENDING))
        if state.resources:
            draft.acquire = state.resources
        else:
            draft.set_status(S.RUNNING)
            flow.advance(draft)
        return draft.decision()

    def knows(self, state: SagaState) -> bool:
        """Tell whether the definition `state` is pinned to is loaded here."""
        return self.registry.get(state.saga_type, state.definition_version) is not None

    def decide(self, state: SagaState, event: Event) -> Decision:
        """Apply one event to one saga and return the new state and what to send.

        Raises:
            DefinitionMissing: The saga's type and version are not loaded here; nothing was
                decided (the shell parks the event for a coordinator that has them).
        """
        saga = self.registry.get(state.saga_type, state.definition_version)
        if saga is None:
            raise DefinitionMissing(state.saga_type, state.definition_version)
        draft = Draft(saga, state, event.at, event.kind, _actor(event))
        what = rule(state.status, event.kind)
        if what.action == "ignore":
            draft.ignore(what.reason)
            return draft.decision()
        if what.action == "refuse":
            draft.refuse(f"{what.reason} (the saga is {state.status})")
            return draft.decision()
        match event:
            case LockGranted():
                on_saga.on_lock_granted(draft, event)
            case LockQueued():
                on_saga.on_lock_queued(draft, event)
            case LockRejected():
                on_saga.on_lock_rejected(draft, event)
            case SagaTimedOut():
                on_saga.on_saga_timed_out(draft, event)
            case StepReplied():
                on_steps.on_step_replied(draft, event)
            case StepTimedOut():
                on_steps.on_step_timed_out(draft, event)
            case RetryDue():
                on_steps.on_retry_due(draft, event)
            case CommandsWithdrawn():
                on_steps.on_commands_withdrawn(draft, event)
            case CancelRequested():
                on_requests.on_cancel_requested(draft, event)
            case RetryRequested():
                on_requests.on_retry_requested(draft, event)
            case SkipRequested():
                on_requests.on_skip_requested(draft, event)
            case AbandonRequested():
                on_requests.on_abandon_requested(draft, event)
            case _:
                assert_never(event)
        return draft.decision()


def _actor(event: Event) -> str | None:
    match event:
        case CancelRequested() | RetryRequested() | SkipRequested() | AbandonRequested():
            return event.requested_by
        case _:
            return None


def _step_state(planned: PlannedStep) -> StepState:
    spec = planned.spec
    return StepState(
        name=planned.name,
        stage=planned.stage,
        group=planned.group,
        key=planned.key,
        service=spec.action.SERVICE,
        action=spec.action.ACTION,
        kind=spec.resolved_kind,
        compensation_action=spec.compensation.ACTION if spec.compensation else None,
    )
