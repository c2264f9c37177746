"""Saga and step states, the tables of allowed transitions, and what events do in each.

Every status change in the engine goes through `check_saga` or a leg's table (`check_step`,
`check_comp`), so a transition not drawn here is a bug caught at once (`IllegalTransition`),
and the state diagram in the docs is generated from `SAGA_TRANSITIONS`
(`python -m coordinator.diagram`).

What each event does in each saga status (handled, ignored or refused) is drawn apart, in
`coordinator.core.rules`: ignoring a late event is normal, an illegal transition is a bug.
"""

from __future__ import annotations

from enum import StrEnum

from contracts import SagaStatus
from coordinator.errors import IllegalTransition


class StepStatus(StrEnum):
    """Where a step's forward action is."""

    PENDING = "pending"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """Not retried because the saga began compensating; it may still have had an effect."""


class CompStatus(StrEnum):
    """Where a step's compensation is."""

    NONE = "none"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Marked done by hand by an operator."""


S = SagaStatus
SAGA_TRANSITIONS: dict[SagaStatus, frozenset[SagaStatus]] = {
    S.PENDING: frozenset(
        {
            S.RUNNING,  # every resource granted (or none needed): the steps start
            S.COMPENSATING,  # granted after a cancel or deadline while waiting: undo what ran
            S.CANCELLED,  # cancelled while waiting, with nothing to undo
            S.FAILED,  # rejected by the lock policy, or its deadline passed while waiting
            S.ABANDONED,  # an operator takes over by hand
        }
    ),
    S.RUNNING: frozenset(
        {
            S.COMPLETED,  # the last stage succeeded
            S.COMPENSATING,  # a step failed for good before the commit point, or a cancel
            S.FAILED,  # a step after the commit point failed: nothing after it is undone
            S.ABANDONED,  # an operator takes over by hand: nothing more runs, nothing undone
        }
    ),
    S.COMPENSATING: frozenset(
        {
            S.COMPENSATED,  # every effect undone after a failure
            S.CANCELLED,  # every effect undone after a cancel
            S.FAILED,  # it turned out that nothing had an effect: nothing to undo
            S.COMPENSATION_FAILED,  # a compensation failed for good: an operator must act
            S.ABANDONED,  # an operator stops the undoing and finishes it by hand
        }
    ),
    S.COMPLETED: frozenset(),
    S.COMPENSATED: frozenset(),
    S.CANCELLED: frozenset(),
    S.ABANDONED: frozenset(),
    S.FAILED: frozenset(
        {
            S.PENDING,  # operator retry of a saga with resources: take the locks again
            S.RUNNING,  # operator retry of a saga without resources
            S.ABANDONED,  # an operator gives up on it for good
        }
    ),
    S.COMPENSATION_FAILED: frozenset(
        {
            S.PENDING,  # operator retry or skip of a saga with resources: locks first
            S.COMPENSATING,  # operator retry or skip of a saga without resources
            S.COMPENSATED,  # (kept for operators finishing by hand; the engine goes through
            S.CANCELLED,  #   compensating, which then ends the saga as it would have)
            S.FAILED,
            S.ABANDONED,  # an operator undoes the rest by hand
        }
    ),
}
"""Saga status -> the statuses it may move to, each with the reason it exists."""

F = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    F.PENDING: frozenset(
        {
            F.RUNNING,  # its stage began: the command is sent
            F.FAILED,  # (its payload could not be built: see legs.start, which runs first)
        }
    ),
    F.RUNNING: frozenset(
        {
            F.SUCCEEDED,  # a succeeded reply
            F.RETRY_WAIT,  # a retryable reply or its deadline: retry per policy
            F.FAILED,  # a failed reply, an invalid result, or retries ran out
            F.ABANDONED,  # its command was withdrawn unsent, or it failed while compensating
        }
    ),
    F.RETRY_WAIT: frozenset(
        {
            F.RUNNING,  # the retry is due: the next attempt is sent
            F.SUCCEEDED,  # a late success of an earlier attempt (same idempotency key)
            F.FAILED,  # (reserved: a retry that cannot be built fails the step)
            F.ABANDONED,  # the saga began compensating before the retry was due
        }
    ),
    F.SUCCEEDED: frozenset(),
    F.FAILED: frozenset({F.PENDING}),  # operator retry: run it again
    F.ABANDONED: frozenset(
        {
            F.SUCCEEDED,  # a late success arrived: now it is compensated like any success
            F.PENDING,  # operator retry of a failed saga: run it again
        }
    ),
}
"""Forward status of a step -> the statuses it may move to."""

C = CompStatus
COMP_TRANSITIONS: dict[CompStatus, frozenset[CompStatus]] = {
    C.NONE: frozenset({C.RUNNING}),  # its turn in reverse order came: the undo is sent
    C.RUNNING: frozenset(
        {
            C.DONE,  # a succeeded reply
            C.RETRY_WAIT,  # a retryable reply or its deadline: retry per policy
            C.FAILED,  # a failed reply, a payload error, or retries ran out
        }
    ),
    C.RETRY_WAIT: frozenset(
        {
            C.RUNNING,  # the retry is due
            C.DONE,  # a late success of an earlier attempt
        }
    ),
    C.DONE: frozenset(),
    C.FAILED: frozenset(
        {
            C.NONE,  # operator retry: the compensation runs again from scratch
            C.SKIPPED,  # operator skip: undone by hand
        }
    ),
    C.SKIPPED: frozenset(),
}
"""Compensation status of a step -> the statuses it may move to."""


def check_saga(old: SagaStatus, new: SagaStatus) -> None:
    """Raise IllegalTransition unless a saga may move from `old` to `new`."""
    if old != new and new not in SAGA_TRANSITIONS[old]:
        raise IllegalTransition(f"saga {old} -> {new} is not allowed")


def check_step(old: StepStatus, new: StepStatus) -> None:
    """Raise IllegalTransition unless a step may move from `old` to `new`."""
    if old != new and new not in STEP_TRANSITIONS[old]:
        raise IllegalTransition(f"step {old} -> {new} is not allowed")


def check_comp(old: CompStatus, new: CompStatus) -> None:
    """Raise IllegalTransition unless a compensation may move from `old` to `new`."""
    if old != new and new not in COMP_TRANSITIONS[old]:
        raise IllegalTransition(f"compensation {old} -> {new} is not allowed")


def mermaid() -> str:
    """Return the saga state diagram as Mermaid, generated from SAGA_TRANSITIONS."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for old, targets in SAGA_TRANSITIONS.items():
        lines.extend(f"    {old.value} --> {new.value}" for new in sorted(targets))
    lines.extend(f"    {s.value} --> [*]" for s in SagaStatus if s.terminal)
    return "\n".join(lines) + "\n"
