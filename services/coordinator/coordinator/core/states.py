"""Saga and step states, the tables of allowed transitions, and what events do in each.

Every status change in the engine goes through `check_saga` or a leg's table (`check_step`,
`check_comp`), so a transition not drawn here is a bug caught at once (`IllegalTransition`),
and the state diagram in the docs is generated from `SAGA_TRANSITIONS`
(`python -m coordinator.diagram`).

Apart from the transitions, `EVENT_RULES` says for every saga status what an event does:
it is *handled*, *ignored* (a duplicate, stale or late event: nothing changes, the message is
acked) or *refused* (an operator asked for something not possible now: recorded in the
history, the saga does not change). Ignoring is a normal outcome of at-least-once delivery;
an illegal transition is an engine bug. The two are never mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

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
        }
    ),
    S.RUNNING: frozenset(
        {
            S.COMPLETED,  # the last stage succeeded
            S.COMPENSATING,  # a step failed for good before the commit point, or a cancel
            S.FAILED,  # a step after the commit point failed: nothing after it is undone
        }
    ),
    S.COMPENSATING: frozenset(
        {
            S.COMPENSATED,  # every effect undone after a failure
            S.CANCELLED,  # every effect undone after a cancel
            S.FAILED,  # it turned out that nothing had an effect: nothing to undo
            S.COMPENSATION_FAILED,  # a compensation failed for good: an operator must act
        }
    ),
    S.COMPLETED: frozenset(),
    S.COMPENSATED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(
        {
            S.PENDING,  # operator retry of a saga with resources: take the locks again
            S.RUNNING,  # operator retry of a saga without resources
        }
    ),
    S.COMPENSATION_FAILED: frozenset(
        {
            S.PENDING,  # operator retry or skip of a saga with resources: locks first
            S.COMPENSATING,  # operator retry or skip of a saga without resources
            S.COMPENSATED,  # (kept for operators finishing by hand; the engine goes through
            S.CANCELLED,  #   compensating, which then ends the saga as it would have)
            S.FAILED,
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


EventKind = Literal[
    "lock_granted",
    "lock_queued",
    "lock_rejected",
    "step_replied",
    "step_timed_out",
    "retry_due",
    "cancel_requested",
    "commands_withdrawn",
    "saga_timed_out",
    "retry_requested",
    "skip_requested",
]
"""The `kind` of every event (see `coordinator.core.events`)."""

EVENT_KINDS: tuple[EventKind, ...] = EventKind.__args__  # type: ignore[attr-defined]
"""Every event kind, in the order of `EventKind`."""


@dataclass(frozen=True)
class Rule:
    """What an event does in one saga status: handle it, ignore it, or refuse it (and why)."""

    action: Literal["handle", "ignore", "refuse"]
    reason: str = ""


HANDLE = Rule("handle")
"""The event's handler decides (it may still ignore a stale step-level event)."""


def _rules(
    handle: tuple[EventKind, ...] = (),
    ignore: dict[str, tuple[EventKind, ...]] | None = None,
    refuse: dict[str, tuple[EventKind, ...]] | None = None,
) -> dict[EventKind, Rule]:
    out: dict[EventKind, Rule] = dict.fromkeys(handle, HANDLE)
    for reason, kinds in (ignore or {}).items():
        out.update(dict.fromkeys(kinds, Rule("ignore", reason)))
    for reason, kinds in (refuse or {}).items():
        out.update(dict.fromkeys(kinds, Rule("refuse", reason)))
    return out


_LOCK: tuple[EventKind, ...] = ("lock_granted", "lock_queued", "lock_rejected")
_STEP: tuple[EventKind, ...] = ("step_replied", "step_timed_out", "retry_due", "commands_withdrawn")
_ENDED = "the saga has ended"

EVENT_RULES: dict[SagaStatus, dict[EventKind, Rule]] = {
    # Waiting for its resources. Step events still count: after an operator retry, a late
    # reply of the first run may arrive, and a late success must be recorded.
    S.PENDING: _rules(
        handle=(*_LOCK, *_STEP, "cancel_requested", "saga_timed_out"),
        refuse={
            "only failed or compensation_failed sagas can be retried": ("retry_requested",),
            "skip applies to compensation_failed sagas": ("skip_requested",),
        },
    ),
    # A lock outcome for a saga that is no longer waiting is a redelivered wake-up.
    S.RUNNING: _rules(
        handle=(*_STEP, "cancel_requested", "saga_timed_out"),
        ignore={"not waiting for a lock": _LOCK},
        refuse={
            "only failed or compensation_failed sagas can be retried": ("retry_requested",),
            "skip applies to compensation_failed sagas": ("skip_requested",),
        },
    ),
    S.COMPENSATING: _rules(
        handle=(*_STEP, "saga_timed_out"),
        ignore={"not waiting for a lock": _LOCK},
        refuse={
            "the saga is already compensating": ("cancel_requested",),
            "only failed or compensation_failed sagas can be retried": ("retry_requested",),
            "skip applies to compensation_failed sagas": ("skip_requested",),
        },
    ),
}
for _status in (S.COMPLETED, S.COMPENSATED, S.CANCELLED):
    # An ended saga ignores what is still in flight for it and refuses every request.
    EVENT_RULES[_status] = _rules(
        ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
        refuse={
            "the saga has already ended": ("cancel_requested",),
            "only failed or compensation_failed sagas can be retried": ("retry_requested",),
            "skip applies to compensation_failed sagas": ("skip_requested",),
        },
    )
EVENT_RULES[S.FAILED] = _rules(
    handle=("retry_requested",),
    ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
    refuse={
        "the saga has already ended": ("cancel_requested",),
        "skip applies to compensation_failed sagas": ("skip_requested",),
    },
)
EVENT_RULES[S.COMPENSATION_FAILED] = _rules(
    handle=("retry_requested", "skip_requested"),
    ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
    refuse={"the saga has already ended": ("cancel_requested",)},
)
"""Saga status -> event kind -> what the event does there. Total: every pair is drawn."""


def rule(status: SagaStatus, kind: EventKind) -> Rule:
    """Return what an event of `kind` does to a saga in `status`."""
    return EVENT_RULES[status][kind]


def mermaid() -> str:
    """Return the saga state diagram as Mermaid, generated from SAGA_TRANSITIONS."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for old, targets in SAGA_TRANSITIONS.items():
        lines.extend(f"    {old.value} --> {new.value}" for new in sorted(targets))
    lines.extend(f"    {s.value} --> [*]" for s in SagaStatus if s.terminal)
    return "\n".join(lines) + "\n"
