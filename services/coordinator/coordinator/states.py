"""Saga and step states as constants, and the one table of allowed transitions.

Every status change in the engine goes through `check_saga` or `check_step`/`check_comp`, so
a transition not drawn here is a bug caught at once, and the state diagram in the docs is
generated from these tables (`python -m coordinator.states`).
"""

from __future__ import annotations

import sys
from enum import StrEnum

from contracts import SagaStatus


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


class IllegalTransitionError(RuntimeError):
    """A status change that the transition tables do not allow: a bug in the engine."""


S = SagaStatus
SAGA_TRANSITIONS: dict[SagaStatus, frozenset[SagaStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.COMPENSATING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.COMPENSATING, S.FAILED}),
    S.COMPENSATING: frozenset({S.COMPENSATED, S.CANCELLED, S.FAILED, S.COMPENSATION_FAILED}),
    S.COMPLETED: frozenset(),
    S.COMPENSATED: frozenset(),
    S.CANCELLED: frozenset(),
    # Operator verbs: retry resumes (through pending, to take the locks again); skip may end it.
    S.FAILED: frozenset({S.PENDING, S.RUNNING}),
    S.COMPENSATION_FAILED: frozenset(
        {S.PENDING, S.COMPENSATING, S.COMPENSATED, S.CANCELLED, S.FAILED}
    ),
}
"""Saga status -> the statuses it may move to."""

F = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    F.PENDING: frozenset({F.RUNNING, F.FAILED}),
    F.RUNNING: frozenset({F.SUCCEEDED, F.RETRY_WAIT, F.FAILED, F.ABANDONED}),
    F.RETRY_WAIT: frozenset({F.RUNNING, F.SUCCEEDED, F.FAILED, F.ABANDONED}),
    F.SUCCEEDED: frozenset(),
    F.FAILED: frozenset({F.PENDING}),
    F.ABANDONED: frozenset({F.SUCCEEDED, F.PENDING}),
}
"""Forward status of a step -> the statuses it may move to."""

C = CompStatus
COMP_TRANSITIONS: dict[CompStatus, frozenset[CompStatus]] = {
    C.NONE: frozenset({C.RUNNING}),
    C.RUNNING: frozenset({C.DONE, C.RETRY_WAIT, C.FAILED}),
    C.RETRY_WAIT: frozenset({C.RUNNING, C.DONE}),
    C.DONE: frozenset(),
    C.FAILED: frozenset({C.NONE, C.SKIPPED}),
    C.SKIPPED: frozenset(),
}
"""Compensation status of a step -> the statuses it may move to."""


def check_saga(old: SagaStatus, new: SagaStatus) -> None:
    """Raise IllegalTransitionError unless a saga may move from `old` to `new`."""
    if old != new and new not in SAGA_TRANSITIONS[old]:
        raise IllegalTransitionError(f"saga {old} -> {new} is not allowed")


def check_step(old: StepStatus, new: StepStatus) -> None:
    """Raise IllegalTransitionError unless a step may move from `old` to `new`."""
    if old != new and new not in STEP_TRANSITIONS[old]:
        raise IllegalTransitionError(f"step {old} -> {new} is not allowed")


def check_comp(old: CompStatus, new: CompStatus) -> None:
    """Raise IllegalTransitionError unless a compensation may move from `old` to `new`."""
    if old != new and new not in COMP_TRANSITIONS[old]:
        raise IllegalTransitionError(f"compensation {old} -> {new} is not allowed")


def mermaid() -> str:
    """Return the saga state diagram as Mermaid, generated from SAGA_TRANSITIONS."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for old, targets in SAGA_TRANSITIONS.items():
        lines.extend(f"    {old.value} --> {new.value}" for new in sorted(targets))
    lines.extend(f"    {s.value} --> [*]" for s in SagaStatus if s.terminal)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mermaid())
