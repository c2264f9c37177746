"""The coordinator's pure core: saga state, the engine that decides, and resource locks.

Nothing under `coordinator.core` does I/O, reads a clock or the environment (a test checks
the whole folder). The shell (consumers, store, relay, timers, API) feeds it events stamped
with the database clock and writes what it decides.
"""

from coordinator.core.engine import Engine
from coordinator.core.events import (
    AbandonRequested,
    CancelRequested,
    CommandsWithdrawn,
    Event,
    LockGranted,
    LockQueued,
    LockRejected,
    Request,
    RetryDue,
    RetryRequested,
    SagaTimedOut,
    SkipRequested,
    StepReplied,
    StepTimedOut,
    dump_event,
    load_event,
)
from coordinator.core.ids import message_id
from coordinator.core.model import Decision, HistoryEntry, Leg, SagaState, StepState, Verdict
from coordinator.core.states import CompStatus, StepStatus

__all__ = [
    "AbandonRequested",
    "CancelRequested",
    "CommandsWithdrawn",
    "CompStatus",
    "Decision",
    "Engine",
    "Event",
    "HistoryEntry",
    "Leg",
    "LockGranted",
    "LockQueued",
    "LockRejected",
    "Request",
    "RetryDue",
    "RetryRequested",
    "SagaState",
    "SagaTimedOut",
    "SkipRequested",
    "StepReplied",
    "StepState",
    "StepStatus",
    "StepTimedOut",
    "Verdict",
    "dump_event",
    "load_event",
    "message_id",
]
