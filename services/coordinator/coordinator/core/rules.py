"""What every event does in every saga status: handled, ignored, or refused (and why).

An event is *handled* (its handler decides; it may still ignore a stale step-level event),
*ignored* (a duplicate, stale or late event: nothing changes, the message is acked) or
*refused* (someone asked for something not possible now: recorded in the history, the saga
does not change). Ignoring is a normal outcome of at-least-once delivery; an illegal
transition (`coordinator.core.states`) is an engine bug. The two are never mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts import SagaStatus

S = SagaStatus

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
    "abandon_requested",
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
_NOT_FAILED = "only failed or compensation_failed sagas can be retried"
_NO_SKIP = "skip applies to compensation_failed sagas"
_OVER = "the saga has already ended"

EVENT_RULES: dict[SagaStatus, dict[EventKind, Rule]] = {
    # Waiting for its resources. Step events still count: after an operator retry, a late
    # reply of the first run may arrive, and a late success must be recorded.
    S.PENDING: _rules(
        handle=(*_LOCK, *_STEP, "cancel_requested", "saga_timed_out", "abandon_requested"),
        refuse={
            _NOT_FAILED: ("retry_requested",),
            _NO_SKIP: ("skip_requested",),
        },
    ),
    # A lock outcome for a saga that is no longer waiting is a redelivered wake-up.
    S.RUNNING: _rules(
        handle=(*_STEP, "cancel_requested", "saga_timed_out", "abandon_requested"),
        ignore={"not waiting for a lock": _LOCK},
        refuse={
            _NOT_FAILED: ("retry_requested",),
            _NO_SKIP: ("skip_requested",),
        },
    ),
    S.COMPENSATING: _rules(
        handle=(*_STEP, "saga_timed_out", "abandon_requested"),
        ignore={"not waiting for a lock": _LOCK},
        refuse={
            "the saga is already compensating": ("cancel_requested",),
            _NOT_FAILED: ("retry_requested",),
            _NO_SKIP: ("skip_requested",),
        },
    ),
}
for _status in (S.COMPLETED, S.COMPENSATED, S.CANCELLED, S.ABANDONED):
    # An ended saga ignores what is still in flight for it and refuses every request.
    EVENT_RULES[_status] = _rules(
        ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
        refuse={
            _OVER: ("cancel_requested", "abandon_requested"),
            _NOT_FAILED: ("retry_requested",),
            _NO_SKIP: ("skip_requested",),
        },
    )
# Failed and compensation_failed sagas wait for an operator: retry, skip, or abandon.
EVENT_RULES[S.FAILED] = _rules(
    handle=("retry_requested", "abandon_requested"),
    ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
    refuse={
        _OVER: ("cancel_requested",),
        _NO_SKIP: ("skip_requested",),
    },
)
EVENT_RULES[S.COMPENSATION_FAILED] = _rules(
    handle=("retry_requested", "skip_requested", "abandon_requested"),
    ignore={_ENDED: (*_LOCK, *_STEP, "saga_timed_out")},
    refuse={_OVER: ("cancel_requested",)},
)
"""Saga status -> event kind -> what the event does there. Total: every pair is drawn."""


def rule(status: SagaStatus, kind: EventKind) -> Rule:
    """Return what an event of `kind` does to a saga in `status`."""
    return EVENT_RULES[status][kind]
