"""The decision draft: a local, mutable copy of one saga while one event is applied to it.

Handlers change the saga only through the draft's methods (its status, error, phase and
cancel marks, its steps) and add what the shell must do (commands, lifecycle events,
history, locks to take or release, commands to withdraw). `decision()` freezes it all into
one `Decision`. The draft knows bookkeeping, not rules: the rules live in the handlers and
in the forward and compensation paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from contracts import Command, ErrorInfo, SagaEvent, SagaStatus
from coordinator.core.ids import message_id
from coordinator.core.model import Decision, HistoryEntry, SagaState, StepState, Verdict
from coordinator.core.states import StepStatus, check_saga
from sagas import PlannedStep, Saga, StepKind

_COMMITTING = (StepKind.PIVOT, StepKind.RETRIABLE)


class Draft:
    """One decision being built for one saga, by one event."""

    def __init__(
        self, saga: Saga[Any], state: SagaState, at: datetime, cause: str, actor: str | None
    ) -> None:
        self.saga = saga
        self.original = state
        self.at = at
        self.cause = cause
        self.actor = actor
        self._state = state
        self.steps: dict[str, StepState] = {s.name: s for s in state.steps}
        self.commands: list[Command] = []
        self.events: list[SagaEvent] = []
        self.history: list[HistoryEntry] = []
        self.acquire: tuple[str, ...] = ()
        self.release = False
        self.withdraw: list[str] = []
        self.verdict: Verdict = "applied"
        self.note = ""
        self._plan: dict[str, PlannedStep] | None = None
        self._data: Any = None

    # -- the saga -------------------------------------------------------------------------------

    @property
    def state(self) -> SagaState:
        """The saga-level fields as drafted so far (its steps are in `steps`)."""
        return self._state

    @property
    def status(self) -> SagaStatus:
        """The saga's status as drafted so far."""
        return self._state.status

    def set_status(self, new: SagaStatus, *, step: str | None = None, **detail: Any) -> None:
        """Move the saga to `new` (checked), log it, and emit its lifecycle event."""
        old = self._state.status
        check_saga(old, new)
        if old == new:
            return
        self._state = self._state.model_copy(update={"status": new})
        self.log("saga.status", from_status=old, to_status=new, step=step, detail=detail)
        self.events.append(self.lifecycle_event(new, step))
        if new.terminal:
            self.release = True

    def set_error(self, error: ErrorInfo | None) -> None:
        """Record why the saga is failing (or clear it on a retry)."""
        self._state = self._state.model_copy(update={"error": error})

    def set_phase(self, phase: Literal["forward", "compensation"]) -> None:
        """Say which way the saga goes: forward, or undoing what it did."""
        self._state = self._state.model_copy(update={"phase": phase})

    def mark_cancelled(self, reason: str, by: str) -> None:
        """Record that (and by whom, and why) the saga is cancelled."""
        self._state = self._state.model_copy(update={"cancel_reason": reason, "cancelled_by": by})

    def clear_deadline(self) -> None:
        """Forget the saga's deadline: a deadline fires once."""
        self._state = self._state.model_copy(update={"deadline": None})

    def next_seq(self) -> int:
        """Return the next completion number (steps are undone in reverse of it)."""
        seq = self._state.seq + 1
        self._state = self._state.model_copy(update={"seq": seq})
        return seq

    def committed(self) -> bool:
        """Tell whether the pivot (or the first retriable step) has been sent."""
        return any(
            s.kind in _COMMITTING and s.status is not StepStatus.PENDING
            for s in self.steps.values()
        )

    # -- steps ----------------------------------------------------------------------------------

    def put(self, step: StepState) -> None:
        """Replace a step with its new state."""
        self.steps[step.name] = step

    def planned(self, name: str) -> PlannedStep:
        """Return the definition of a step, expanded against the saga's input."""
        if self._plan is None:
            self._plan = {p.name: p for p in self.saga.plan(self.data)}
        return self._plan[name]

    @property
    def data(self) -> Any:
        """The saga's input, parsed into its model."""
        if self._data is None:
            self._data = self.saga.parse_input(self._state.input)
        return self._data

    # -- what the shell does with it ------------------------------------------------------------

    def log(
        self,
        kind: str,
        *,
        step: str | None = None,
        attempt: int | None = None,
        from_status: str | None = None,
        to_status: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append a history entry caused by this event."""
        self.history.append(
            HistoryEntry(
                at=self.at,
                kind=kind,
                step=step,
                attempt=attempt,
                from_status=from_status,
                to_status=to_status,
                cause=self.cause,
                detail=detail or {},
                actor=self.actor,
            )
        )

    def send(self, command: Command) -> None:
        """Queue a command for the outbox."""
        self.commands.append(command)

    def ignore(self, note: str) -> None:
        """Decide nothing: a duplicate, stale or late event."""
        self.verdict, self.note = "ignored", note

    def refuse(self, note: str) -> None:
        """Refuse an operator's request; who asked for what stays in the history."""
        self.verdict, self.note = "refused", note
        self.log("request.refused", detail={"reason": note})

    def decision(self) -> Decision:
        """Freeze the draft into the Decision the shell applies."""
        if self.verdict == "ignored":
            return Decision(state=self.original, verdict="ignored", note=self.note)
        if self.verdict == "refused":
            return Decision(
                state=self.original, verdict="refused", note=self.note, history=tuple(self.history)
            )
        state = self._state.model_copy(
            update={
                "steps": tuple(self.steps.values()),
                "updated_at": self.at,
                "version": self.original.version + 1,
            }
        )
        return Decision(
            state=state,
            verdict=self.verdict,
            note=self.note,
            commands=tuple(self.commands),
            events=tuple(self.events),
            history=tuple(self.history),
            acquire=self.acquire,
            release=self.release,
            withdraw=tuple(self.withdraw),
        )

    def lifecycle_event(self, status: SagaStatus, step: str | None = None) -> SagaEvent:
        """Return the lifecycle event of the saga reaching `status` (ids are deterministic)."""
        state = self._state
        return SagaEvent(
            message_id=message_id(state.saga_id, "event", len(self.history), status, state.version),
            sent_at=self.at,
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            status=status,
            step=step,
            error=state.error,
            trace_id=state.trace_id,
            at=self.at,
        )
