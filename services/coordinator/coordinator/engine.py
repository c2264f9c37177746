"""The pure saga engine: `decide(state, event) -> Decision`. No I/O, no clock reads.

Rules, in the order a saga meets them:

- A saga starts `pending`; if its type declares resources it asks the lock table for them and
  waits in FIFO order (or is rejected, or supersedes the holder, by its type's policy).
- Stages run one after another; the steps of a stage (a Parallel or ForEach group) run at
  once. A step's command carries a deadline; `progress` replies extend it (heartbeat).
- A `retryable` reply or a passed deadline schedules the next attempt per the step's retry
  policy (the decision says when it is due); retriable steps retry without limit. A passed
  deadline makes the step *uncertain*: it may have had an effect nobody saw.
- A `failed` reply, or retries running out, before the saga is committed starts compensation.
  Committed means the pivot (or the first retriable step) has been sent; after that a failed
  step leaves the saga `failed` for an operator, since nothing after the pivot is undone.
- Compensation: steps still running are awaited (until they reply or time out); steps waiting
  for a retry are abandoned. Then every compensatable step that succeeded, or is uncertain, is
  compensated stage by stage in reverse order: the steps of one group in parallel, groups in
  reverse. A compensation that fails for good, or runs out of retries, stops there and
  leaves the saga `compensation_failed`.
- Cancellation is accepted until the saga is committed, and runs compensation; a saga
  waiting for a lock is cancelled at once. The saga's deadline cancels it the same way.
- A reply is matched to the command awaiting it by message id; a late `succeeded` of an
  earlier attempt is accepted (the idempotency key is the same for every attempt), any other
  stale or duplicate reply changes nothing.
- Operator verbs: `retry` resumes a `failed` or `compensation_failed` saga, reusing the
  results of completed steps; `skip` marks one failed compensation done by hand.
- Every change appends a history entry; every saga status change emits a lifecycle event.

Errors::

    EngineError
     +-- UnknownSagaType   StartSaga names a saga type the registry does not know
     +-- InvalidInput      StartSaga's input does not validate against the saga's input model
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from contracts import CATALOGUE, Command, ErrorInfo, SagaEvent, SagaStatus
from coordinator.model import (
    CancelRequested,
    CommandsWithdrawn,
    Decision,
    Event,
    HistoryEntry,
    LockGranted,
    LockQueued,
    LockRejected,
    RetryDue,
    RetryRequested,
    SagaState,
    SagaTimedOut,
    SkipRequested,
    StepReplied,
    StepState,
    StepTimedOut,
    Verdict,
)
from coordinator.states import CompStatus, StepStatus, check_comp, check_saga, check_step
from sagas import BuildContext, PlannedStep, Registry, Saga, StepKind

S = SagaStatus
_COMMITTING = (StepKind.PIVOT, StepKind.RETRIABLE)
_NAMESPACE = uuid.UUID("6f1e6c34-6c1b-4d7e-9a55-3c0f0c8e2a11")


class EngineError(ValueError):
    """A saga cannot be started; `code` is stable, the message says what to fix."""

    code = "engine_error"


class UnknownSagaType(EngineError):
    """The saga type is not in the registry."""

    code = "unknown_saga_type"


class InvalidInput(EngineError):
    """The input does not validate against the saga's input model."""

    code = "invalid_input"

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def message_id(*parts: object) -> str:
    """Return a deterministic message id: a replay or another replica computes the same."""
    return uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)).hex


class Engine:
    """Decides what happens to a saga next; holds only the registry of saga types."""

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
        """Create a saga: pending on its resources, or already running if it holds none."""
        if saga_type not in self.registry:
            raise UnknownSagaType(
                f"unknown saga type {saga_type!r}; known: {', '.join(self.registry.names())}"
            )
        saga = self.registry[saga_type]
        try:
            data = saga.parse_input(input)
        except ValidationError as exc:
            errors = [dict(e) for e in exc.errors(include_url=False, include_context=False)]
            raise InvalidInput(f"input of {saga_type} is invalid: {exc}", errors) from exc
        steps = tuple(_step_state(p) for p in saga.plan(data))
        state = SagaState(
            saga_id=saga_id,
            saga_type=saga_type,
            definition_version=saga.version,
            status=S.PENDING,
            input=data.model_dump(mode="json"),
            resources=saga.resources_of(data),
            created_at=at,
            updated_at=at,
            deadline=at + saga.timeout if saga.timeout else None,
            trace_id=trace_id,
            steps=steps,
        )
        tx = _Tx(saga, state, at, "start", requested_by)
        tx.log("saga.created", to_status=S.PENDING, detail={"resources": list(state.resources)})
        tx.events.append(tx.event(S.PENDING))
        if state.resources:
            tx.acquire = state.resources
        else:
            tx.saga_status(S.RUNNING)
            tx.advance()
        return tx.decision()

    def decide(self, state: SagaState, event: Event) -> Decision:
        """Apply one event to one saga and return the new state and what to send."""
        saga = self.registry[state.saga_type]
        actor = getattr(event, "requested_by", None)
        tx = _Tx(saga, state, event.at, event.kind, actor)
        passive = isinstance(event, StepReplied | StepTimedOut | RetryDue | CommandsWithdrawn)
        if passive and state.status.terminal:
            return tx.ignore("the saga has ended")
        handler = _HANDLERS[type(event)]
        handler(tx, event)
        return tx.decision()


class _Tx:
    """One decision being built: a local, mutable draft of the new state."""

    def __init__(
        self, saga: Saga[Any], state: SagaState, at: datetime, cause: str, actor: str | None
    ) -> None:
        self.saga = saga
        self.original = state
        self.state = state
        self.at = at
        self.cause = cause
        self.actor = actor
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

    # -- bookkeeping ------------------------------------------------------------------------

    def ignore(self, note: str) -> Decision:
        self.verdict, self.note = "ignored", note
        return Decision(state=self.original, verdict="ignored", note=note)

    def refuse(self, note: str) -> None:
        self.verdict, self.note = "refused", note
        self.log("request.refused", detail={"reason": note})

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

    def event(self, status: SagaStatus, step: str | None = None) -> SagaEvent:
        return SagaEvent(
            message_id=message_id(
                self.state.saga_id, "event", len(self.history), status, self.state.version
            ),
            sent_at=self.at,
            saga_id=self.state.saga_id,
            saga_type=self.state.saga_type,
            status=status,
            step=step,
            error=self.state.error,
            trace_id=self.state.trace_id,
            at=self.at,
        )

    def saga_status(self, new: SagaStatus, *, step: str | None = None, **detail: Any) -> None:
        old = self.state.status
        check_saga(old, new)
        if old == new:
            return
        self.state = self.state.model_copy(update={"status": new})
        self.log("saga.status", from_status=old, to_status=new, step=step, detail=detail)
        self.events.append(self.event(new, step))
        if new.terminal:
            self.release = True

    def update(self, name: str, **changes: Any) -> StepState:
        old = self.steps[name]
        if "status" in changes:
            check_step(old.status, changes["status"])
        if "comp_status" in changes:
            check_comp(old.comp_status, changes["comp_status"])
        new = old.model_copy(update=changes)
        self.steps[name] = new
        return new

    def move(
        self, name: str, kind: str, *, detail: dict[str, Any] | None = None, **changes: Any
    ) -> StepState:
        """Change a step's status (or its compensation's) and log that transition as `kind`."""
        old = self.steps[name]
        field = "comp_status" if "comp_status" in changes else "status"
        new = self.update(name, **changes)
        comp = field == "comp_status"
        self.log(
            kind,
            step=name,
            attempt=old.comp_attempt if comp else old.attempt,
            from_status=getattr(old, field),
            to_status=getattr(new, field),
            detail=detail,
        )
        return new

    def decision(self) -> Decision:
        if self.verdict == "ignored":
            return Decision(state=self.original, verdict="ignored", note=self.note)
        if self.verdict == "refused":
            # Who asked for what stays in the audit log; the saga itself does not change.
            return Decision(
                state=self.original, verdict="refused", note=self.note, history=tuple(self.history)
            )
        state = self.state.model_copy(
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

    # -- definitions --------------------------------------------------------------------------

    def planned(self, name: str) -> PlannedStep:
        if self._plan is None:
            self._data = self.saga.parse_input(self.state.input)
            self._plan = {p.name: p for p in self.saga.plan(self._data)}
        return self._plan[name]

    def committed(self) -> bool:
        return any(
            s.kind in _COMMITTING and s.status is not StepStatus.PENDING
            for s in self.steps.values()
        )

    # -- sending commands ---------------------------------------------------------------------

    def send(self, name: str, *, compensation: bool) -> None:
        step = self.steps[name]
        planned = self.planned(name)
        spec = planned.spec
        attempt = (step.comp_attempt if compensation else step.attempt) + 1
        try:
            payload = self.build(planned, step, compensation=compensation)
        except Exception as exc:
            error = ErrorInfo(code="payload_error", message=f"{type(exc).__name__}: {exc}")
            if compensation:
                self.update(name, comp_status=CompStatus.RUNNING, comp_attempt=attempt)
                self.comp_failed(name, error)
            else:
                self.update(name, status=StepStatus.RUNNING, attempt=attempt)
                self.forward_failed(name, error)
            return
        # The version makes ids unique across operator retries (which restart attempt counts),
        # while a replay of the same decision still computes the same id.
        cmd_id = message_id(
            self.state.saga_id,
            name,
            "undo" if compensation else "do",
            attempt,
            self.original.version,
        )
        key = f"{self.state.saga_id}/{name}"
        deadline = self.at + spec.timeout
        action = payload.ACTION
        self.commands.append(
            Command(
                message_id=cmd_id,
                sent_at=self.at,
                saga_id=self.state.saga_id,
                saga_type=self.state.saga_type,
                step=name,
                attempt=attempt,
                compensation=compensation,
                idempotency_key=f"{key}/undo" if compensation else key,
                undoes_key=key if compensation else None,
                deadline=deadline,
                service=payload.SERVICE,
                action=action,
                payload=payload.model_dump(mode="json"),
            )
        )
        # The same bookkeeping for both directions, on the compensation's fields or the step's.
        pre = "comp_" if compensation else ""
        old_status = step.comp_status if compensation else step.status
        running = CompStatus.RUNNING if compensation else StepStatus.RUNNING
        first = (step.comp_started_at if compensation else step.started_at) or self.at
        self.update(
            name,
            **{f"{pre}status": running, f"{pre}attempt": attempt, f"{pre}started_at": first},
            command_id=cmd_id,
            deadline=deadline,
            due_at=None,
        )
        self.log(
            "compensation.started" if compensation else "step.started",
            step=name,
            attempt=attempt,
            from_status=old_status,
            to_status=running,
            detail={"action": action, "command_id": cmd_id},
        )

    def build(self, planned: PlannedStep, step: StepState, *, compensation: bool) -> Any:
        spec = planned.spec
        if self._data is None:
            self._data = self.saga.parse_input(self.state.input)
        results: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for other in self.steps.values():
            if other.result is None or other.status is not StepStatus.SUCCEEDED:
                continue
            if other.group is not None and other.key is not None:
                if other.group in spec.uses:
                    groups.setdefault(other.group, {})[other.key] = _result(other)
            elif other.name in spec.uses:
                results[other.name] = _result(other)
        ctx = BuildContext(
            saga_id=self.state.saga_id,
            input=self._data,
            item=planned.item,
            _results=results,
            _groups=groups,
            _uses=frozenset(spec.uses),
        )
        if not compensation:
            return spec.build(ctx)
        assert spec.undo is not None
        own = _result(step) if step.result is not None else None
        return spec.undo(ctx, own)

    # -- forward --------------------------------------------------------------------------------

    def advance(self) -> None:
        if self.state.status is S.RUNNING:
            self.advance_forward()
        elif self.state.status is S.COMPENSATING:
            self.advance_compensation()

    def advance_forward(self) -> None:
        for stage in sorted({s.stage for s in self.steps.values()}):
            members = [s for s in self.steps.values() if s.stage == stage]
            if all(s.status is StepStatus.SUCCEEDED for s in members):
                continue
            for step in members:
                if step.status is StepStatus.PENDING and self.state.status is S.RUNNING:
                    self.send(step.name, compensation=False)
            return
        self.saga_status(S.COMPLETED)

    def succeeded(self, name: str, result: dict[str, Any]) -> None:
        step = self.steps[name]
        action = CATALOGUE[step.action]
        try:
            clean = action.RESULT.model_validate(result).model_dump(mode="json")
        except ValidationError as exc:
            error = ErrorInfo(code="invalid_result", message=f"{step.action} returned {exc}")
            self.forward_failed(name, error)
            return
        seq = self.state.seq + 1
        self.state = self.state.model_copy(update={"seq": seq})
        self.move(
            name,
            "step.succeeded",
            status=StepStatus.SUCCEEDED,
            result=clean,
            finished_at=self.at,
            command_id=None,
            deadline=None,
            due_at=None,
            completed_seq=seq,
            error=None,
        )

    def transient(self, name: str, error: ErrorInfo, *, uncertain: bool) -> None:
        step = self.steps[name]
        policy = self.saga.retry_of(self.planned(name).spec, compensation=False)
        unlimited = step.kind is StepKind.RETRIABLE
        marks = {
            "uncertain": step.uncertain or uncertain,
            "error": error,
            "command_id": None,
            "deadline": None,
        }
        if self.state.status is S.COMPENSATING:
            self.move(
                name,
                "step.abandoned",
                detail={"error": error.model_dump()},
                status=StepStatus.ABANDONED,
                **marks,
            )
        elif unlimited or step.attempt < policy.maximum_attempts:
            due = self.at + policy.delay(step.attempt, f"{self.state.saga_id}/{name}")
            self.move(
                name,
                "step.retry_scheduled",
                detail={"due_at": due.isoformat(), "error": error.model_dump()},
                status=StepStatus.RETRY_WAIT,
                due_at=due,
                **marks,
            )
        else:
            self.update(name, **marks)
            exhausted = ErrorInfo(
                code="retries_exhausted",
                message=f"{step.attempt} attempts failed; last: {error.code}: {error.message}",
            )
            self.forward_failed(name, exhausted)

    def forward_failed(self, name: str, error: ErrorInfo) -> None:
        step = self.steps[name]
        self.move(
            name,
            "step.failed",
            detail={"error": error.model_dump()},
            status=StepStatus.FAILED,
            error=error,
            finished_at=self.at,
            command_id=None,
            deadline=None,
            due_at=None,
        )
        if self.state.status is not S.RUNNING:
            return
        self.state = self.state.model_copy(update={"error": error})
        if step.kind is StepKind.RETRIABLE:
            self.saga_status(S.FAILED, step=name, reason="a step after the commit point failed")
        else:
            self.begin_compensation(step=name)

    # -- compensation ---------------------------------------------------------------------------

    def begin_compensation(self, *, step: str | None = None) -> None:
        self.state = self.state.model_copy(update={"phase": "compensation"})
        self.saga_status(S.COMPENSATING, step=step)
        for other in list(self.steps.values()):
            if other.status is StepStatus.RETRY_WAIT:
                self.move(other.name, "step.abandoned", status=StepStatus.ABANDONED, due_at=None)
            elif other.status is StepStatus.RUNNING and other.command_id:
                self.withdraw.append(other.command_id)
        self.advance_compensation()

    def needs_compensation(self, step: StepState) -> bool:
        if step.kind is not StepKind.COMPENSATABLE:
            return False
        if step.status is StepStatus.SUCCEEDED:
            return True
        return step.uncertain and step.status in (StepStatus.FAILED, StepStatus.ABANDONED)

    def advance_compensation(self) -> None:
        steps = list(self.steps.values())
        if any(s.status is StepStatus.RUNNING for s in steps):
            return  # awaited: its reply (or deadline) decides whether it needs undoing
        todo = [s for s in steps if self.needs_compensation(s)]
        open_ = [s for s in todo if s.comp_status not in (CompStatus.DONE, CompStatus.SKIPPED)]
        if not open_:
            if self.state.cancel_reason is not None:
                self.saga_status(S.CANCELLED)
            elif todo:
                self.saga_status(S.COMPENSATED)
            else:
                self.saga_status(S.FAILED, reason="nothing had an effect, so nothing to undo")
            return
        top = max(s.stage for s in open_)
        current = [s for s in open_ if s.stage == top]
        in_flight = [
            s for s in current if s.comp_status in (CompStatus.RUNNING, CompStatus.RETRY_WAIT)
        ]
        failed = [s for s in current if s.comp_status is CompStatus.FAILED]
        if failed and not in_flight:
            self.state = self.state.model_copy(update={"error": failed[0].comp_error})
            self.saga_status(S.COMPENSATION_FAILED, step=failed[0].name)
            return
        starting = [s.name for s in current if s.comp_status is CompStatus.NONE]
        for name in starting:
            self.send(name, compensation=True)
        if any(self.steps[name].comp_status is CompStatus.FAILED for name in starting):
            self.advance_compensation()  # a payload bug failed one at once: settle the stage

    def comp_succeeded(self, name: str) -> None:
        self.move(
            name,
            "compensation.succeeded",
            comp_status=CompStatus.DONE,
            comp_finished_at=self.at,
            command_id=None,
            deadline=None,
            due_at=None,
            comp_error=None,
        )

    def comp_transient(self, name: str, error: ErrorInfo) -> None:
        step = self.steps[name]
        policy = self.saga.retry_of(self.planned(name).spec, compensation=True)
        if step.comp_attempt < policy.maximum_attempts:
            due = self.at + policy.delay(step.comp_attempt, f"{self.state.saga_id}/{name}/undo")
            self.move(
                name,
                "compensation.retry_scheduled",
                detail={"due_at": due.isoformat(), "error": error.model_dump()},
                comp_status=CompStatus.RETRY_WAIT,
                due_at=due,
                comp_error=error,
                command_id=None,
                deadline=None,
            )
        else:
            self.comp_failed(
                name,
                ErrorInfo(
                    code="retries_exhausted",
                    message=f"{step.comp_attempt} compensation attempts failed; last: "
                    f"{error.code}: {error.message}",
                ),
            )

    def comp_failed(self, name: str, error: ErrorInfo) -> None:
        self.move(
            name,
            "compensation.failed",
            detail={"error": error.model_dump()},
            comp_status=CompStatus.FAILED,
            comp_error=error,
            command_id=None,
            deadline=None,
            due_at=None,
            comp_finished_at=self.at,
        )


# -- event handlers -------------------------------------------------------------------------------


def _on_lock_granted(tx: _Tx, _event: LockGranted) -> None:
    if tx.state.status is not S.PENDING:
        tx.ignore(f"not waiting for a lock (status {tx.state.status})")
        return
    tx.log("lock.granted", detail={"resources": list(tx.state.resources)})
    tx.saga_status(S.COMPENSATING if tx.state.phase == "compensation" else S.RUNNING)
    tx.advance()


def _on_lock_queued(tx: _Tx, event: LockQueued) -> None:
    if tx.state.status is not S.PENDING:
        tx.ignore(f"not waiting for a lock (status {tx.state.status})")
        return
    tx.log(
        "lock.waiting", detail={"waiting_for": list(event.waiting_for), "position": event.position}
    )


def _on_lock_rejected(tx: _Tx, event: LockRejected) -> None:
    if tx.state.status is not S.PENDING:
        tx.ignore(f"not waiting for a lock (status {tx.state.status})")
        return
    error = ErrorInfo(
        code="resource_busy", message=f"{event.resource} is held by saga {event.holder}"
    )
    tx.state = tx.state.model_copy(update={"error": error})
    tx.saga_status(S.FAILED, reason="resource busy and the saga type rejects waiting")


def _on_reply(tx: _Tx, event: StepReplied) -> None:
    reply = event.reply
    step = tx.steps.get(reply.step)
    if step is None:
        tx.ignore(f"no step {reply.step!r} in this saga")
        return
    current = reply.command_id == step.command_id
    if reply.compensation:
        if current and step.comp_status is CompStatus.RUNNING:
            _comp_reply(tx, step, event)
        elif (
            reply.outcome == "succeeded"
            and step.comp_status is CompStatus.RETRY_WAIT
            and reply.attempt <= step.comp_attempt
        ):
            tx.comp_succeeded(step.name)
        else:
            tx.ignore("duplicate or stale compensation reply")
            return
    elif current and step.status is StepStatus.RUNNING:
        _forward_reply(tx, step, event)
    elif (
        reply.outcome == "succeeded"
        and reply.attempt <= step.attempt
        and step.comp_status is CompStatus.NONE
        and step.status in (StepStatus.RUNNING, StepStatus.RETRY_WAIT, StepStatus.ABANDONED)
    ):
        # An earlier attempt finished after all: same idempotency key, so same effect.
        tx.succeeded(step.name, reply.result or {})
    else:
        tx.ignore("duplicate or stale reply")
        return
    tx.advance()


def _heartbeat(tx: _Tx, step: StepState, event: StepReplied) -> None:
    # A progress reply moves the deadline of the attempt in flight, forward or compensation.
    progress = event.reply.progress
    tx.update(
        step.name,
        deadline=event.at + tx.planned(step.name).spec.timeout,
        progress=progress.message if progress else None,
    )


def _forward_reply(tx: _Tx, step: StepState, event: StepReplied) -> None:
    reply = event.reply
    if reply.outcome == "progress":
        _heartbeat(tx, step, event)
    elif reply.outcome == "succeeded":
        tx.succeeded(step.name, reply.result or {})
    elif reply.outcome == "failed":
        assert reply.error is not None
        tx.forward_failed(step.name, reply.error)
    else:
        assert reply.error is not None
        tx.transient(step.name, reply.error, uncertain=False)


def _comp_reply(tx: _Tx, step: StepState, event: StepReplied) -> None:
    reply = event.reply
    if reply.outcome == "progress":
        _heartbeat(tx, step, event)
    elif reply.outcome == "succeeded":
        tx.comp_succeeded(step.name)
    elif reply.outcome == "failed":
        assert reply.error is not None
        tx.comp_failed(step.name, reply.error)
    else:
        assert reply.error is not None
        tx.comp_transient(step.name, reply.error)


def _on_timeout(tx: _Tx, event: StepTimedOut) -> None:
    step = tx.steps.get(event.step)
    error = ErrorInfo(code="step_timeout", message="no reply or heartbeat before the deadline")
    if step is None:
        tx.ignore(f"no step {event.step!r}")
        return
    if event.compensation:
        if step.comp_status is not CompStatus.RUNNING or step.comp_attempt != event.attempt:
            tx.ignore("stale compensation deadline")
            return
        tx.log("compensation.timed_out", step=step.name, attempt=step.comp_attempt)
        tx.comp_transient(step.name, error)
    else:
        if step.status is not StepStatus.RUNNING or step.attempt != event.attempt:
            tx.ignore("stale step deadline")
            return
        tx.log("step.timed_out", step=step.name, attempt=step.attempt)
        tx.transient(step.name, error, uncertain=True)
    tx.advance()


def _on_retry_due(tx: _Tx, event: RetryDue) -> None:
    step = tx.steps.get(event.step)
    if step is None:
        tx.ignore(f"no step {event.step!r}")
        return
    waiting = step.comp_status if event.compensation else step.status
    if waiting.value != "retry_wait" or step.due_at is None or event.at < step.due_at:
        tx.ignore("no retry due")
        return
    if event.compensation:
        tx.send(step.name, compensation=True)
    elif tx.state.status is S.RUNNING:
        tx.send(step.name, compensation=False)
    else:
        tx.ignore("the saga is not running")
        return
    tx.advance()


def _on_cancel(tx: _Tx, event: CancelRequested) -> None:
    status = tx.state.status
    if status.terminal:
        tx.refuse(f"the saga has already ended ({status})")
        return
    if status is S.COMPENSATING:
        tx.refuse("the saga is already compensating")
        return
    if tx.committed():
        tx.refuse("the saga has passed its pivot and will finish")
        return
    if status is S.PENDING and tx.state.phase == "compensation":
        tx.refuse("the saga is already compensating (it waits for its resources to go on)")
        return
    tx.state = tx.state.model_copy(
        update={"cancel_reason": event.reason, "cancelled_by": event.requested_by}
    )
    tx.log("saga.cancel_requested", detail={"reason": event.reason})
    if status is S.PENDING:
        if any(tx.needs_compensation(s) for s in tx.steps.values()):
            # Undoing needs the resources: stay in line, compensate once they are granted.
            tx.state = tx.state.model_copy(update={"phase": "compensation"})
        else:
            tx.saga_status(S.CANCELLED, reason="cancelled while waiting for its resources")
        return
    tx.begin_compensation()


def _on_withdrawn(tx: _Tx, event: CommandsWithdrawn) -> None:
    changed = False
    for step in list(tx.steps.values()):
        if step.command_id in event.command_ids and step.status is StepStatus.RUNNING:
            tx.update(step.name, status=StepStatus.ABANDONED, command_id=None, deadline=None)
            tx.log(
                "step.withdrawn",
                step=step.name,
                attempt=step.attempt,
                from_status=StepStatus.RUNNING,
                to_status=StepStatus.ABANDONED,
                detail={"reason": "its command was never sent"},
            )
            changed = True
    if not changed:
        tx.ignore("nothing to withdraw")
        return
    tx.advance()


def _on_saga_timeout(tx: _Tx, event: SagaTimedOut) -> None:
    status = tx.state.status
    if status.terminal or tx.state.deadline is None or event.at < tx.state.deadline:
        tx.ignore("no saga deadline due")
        return
    error = ErrorInfo(code="saga_timeout", message="the saga's deadline passed")
    # A deadline fires once: clearing it keeps the timers from raising it again.
    tx.state = tx.state.model_copy(update={"deadline": None})
    undoing = status is S.COMPENSATING or tx.state.phase == "compensation"
    if undoing or tx.committed():
        tx.log("saga.deadline_passed", detail={"action": "none: it must finish"})
    elif status is S.PENDING and any(tx.needs_compensation(s) for s in tx.steps.values()):
        tx.state = tx.state.model_copy(update={"error": error, "phase": "compensation"})
        tx.log("saga.deadline_passed", detail={"action": "compensate once resources are granted"})
    elif status is S.PENDING:
        tx.state = tx.state.model_copy(update={"error": error})
        tx.saga_status(S.FAILED, reason="deadline passed while waiting for resources")
    else:
        tx.state = tx.state.model_copy(update={"error": error})
        tx.begin_compensation()


def _on_retry(tx: _Tx, event: RetryRequested) -> None:
    status = tx.state.status
    if status not in (S.FAILED, S.COMPENSATION_FAILED):
        tx.refuse(f"only failed or compensation_failed sagas can be retried, not {status}")
        return
    tx.log("operator.retry", detail={"reason": event.reason})
    if status is S.COMPENSATION_FAILED:
        for step in list(tx.steps.values()):
            if step.comp_status is CompStatus.FAILED:
                tx.update(step.name, comp_status=CompStatus.NONE, comp_attempt=0)
    else:
        for step in list(tx.steps.values()):
            if step.status in (StepStatus.FAILED, StepStatus.ABANDONED):
                # A fresh budget of attempts: the operator fixed what made them run out.
                tx.update(step.name, status=StepStatus.PENDING, command_id=None, attempt=0)
        tx.state = tx.state.model_copy(update={"phase": "forward"})
    tx.state = tx.state.model_copy(update={"error": None})
    if tx.state.resources:
        tx.saga_status(S.PENDING)
        tx.acquire = tx.state.resources
    else:
        resume = S.COMPENSATING if tx.state.phase == "compensation" else S.RUNNING
        tx.saga_status(resume)
        tx.advance()


def _on_skip(tx: _Tx, event: SkipRequested) -> None:
    step = tx.steps.get(event.step)
    if tx.state.status is not S.COMPENSATION_FAILED:
        tx.refuse(f"skip applies to compensation_failed sagas, not {tx.state.status}")
        return
    if step is None or step.comp_status is not CompStatus.FAILED:
        tx.refuse(f"step {event.step!r} has no failed compensation")
        return
    tx.update(step.name, comp_status=CompStatus.SKIPPED, note=event.reason)
    tx.log(
        "operator.skip",
        step=step.name,
        from_status=CompStatus.FAILED,
        to_status=CompStatus.SKIPPED,
        detail={"reason": event.reason},
    )
    if any(s.comp_status is CompStatus.FAILED for s in tx.steps.values()):
        return
    tx.state = tx.state.model_copy(update={"error": None})
    if tx.state.resources:
        tx.saga_status(S.PENDING)
        tx.acquire = tx.state.resources
    else:
        tx.saga_status(S.COMPENSATING)
        tx.advance()


_HANDLERS: dict[type[Any], Any] = {
    LockGranted: _on_lock_granted,
    LockQueued: _on_lock_queued,
    LockRejected: _on_lock_rejected,
    StepReplied: _on_reply,
    StepTimedOut: _on_timeout,
    RetryDue: _on_retry_due,
    CancelRequested: _on_cancel,
    CommandsWithdrawn: _on_withdrawn,
    SagaTimedOut: _on_saga_timeout,
    RetryRequested: _on_retry,
    SkipRequested: _on_skip,
}


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


def _result(step: StepState) -> Any:
    assert step.result is not None
    return CATALOGUE[step.action].RESULT.model_validate(step.result)
