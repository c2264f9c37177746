"""The small values a saga definition is made of: kinds, policies, and its errors.

Step kinds, lock policies and retry policies are frozen values.

Errors::

    SagaDefinitionError     a definition breaks a rule; the message names saga, step and rule
    UndeclaredResultError   a payload builder read a result it does not declare in `uses`
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class SagaDefinitionError(ValueError):
    """A saga definition breaks a rule; raised when the definition is built."""

    def __init__(self, saga: str, step: str | None, rule: str, detail: str) -> None:
        where = f"saga {saga!r}" + (f", step {step!r}" if step else "")
        super().__init__(f"{where}: {rule}: {detail}")
        self.saga = saga
        self.step = step
        self.rule = rule
        self.detail = detail


class UndeclaredResultError(LookupError):
    """A payload builder read the result of a step it does not declare in `uses`."""


class StepKind(StrEnum):
    """Richardson's step kinds, plus read-only queries."""

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"
    QUERY = "query"


class LockPolicy(StrEnum):
    """What a saga does when another saga holds a resource it needs."""

    WAIT = "wait"
    """Queue in FIFO order until the holder finishes."""
    REJECT = "reject"
    """Fail at once with `resource_busy`."""
    SUPERSEDE = "supersede"
    """Cancel holders of the types in `supersedes`, then go first; wait for any other holder."""


class LockMode(StrEnum):
    """How a saga holds a resource."""

    EXCLUSIVE = "exclusive"
    """Alone: no other saga holds it meanwhile."""
    SHARED = "shared"
    """With other sharers (two scale-outs of one NS); an exclusive claim waits for all."""


class QueuedPolicy(StrEnum):
    """What a superseding saga does to the sagas queued on its resources."""

    KEEP = "keep"
    """They stay in line and run after it."""
    CANCEL = "cancel"
    """Those of the superseded types are cancelled (`superseded by <saga>`)."""


@dataclass(frozen=True)
class Shared:
    """A resource a saga holds shared; a plain string in `resources` is held exclusively."""

    resource: str


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried after a transient failure: exponential backoff with a cap.

    Bounded by attempts, by the time since the run's first attempt, or both (whichever is
    reached first ends the retries): a VIM outage of some minutes must not fail a saga, so
    steps that talk to one are bounded by time.
    """

    maximum_attempts: int | None = 5
    """Attempts in all, the first included (None: no bound); retriable steps retry forever."""
    maximum_elapsed: timedelta | None = None
    """No attempt starts later than this after the first one (None: no bound)."""
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    maximum_interval: timedelta = timedelta(minutes=1)
    jitter: float = 0.2
    """Fraction of the delay to spread retries by, derived from the key so it stays pure."""

    def __post_init__(self) -> None:
        if self.maximum_attempts is None and self.maximum_elapsed is None:
            raise ValueError("bound the retries: set maximum_attempts or maximum_elapsed")
        if self.maximum_attempts is not None and self.maximum_attempts < 1:
            raise ValueError("maximum_attempts must be at least 1")
        if self.maximum_elapsed is not None and self.maximum_elapsed <= timedelta(0):
            raise ValueError("maximum_elapsed must be positive")
        if self.initial_interval <= timedelta(0) or self.maximum_interval < self.initial_interval:
            raise ValueError("need 0 < initial_interval <= maximum_interval")
        if self.backoff < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need backoff >= 1 and 0 <= jitter < 1")

    def allows(self, attempts: int, elapsed: timedelta) -> bool:
        """Tell whether another attempt may start after `attempts`, `elapsed` into the run."""
        if self.maximum_attempts is not None and attempts >= self.maximum_attempts:
            return False
        return self.maximum_elapsed is None or elapsed < self.maximum_elapsed

    def delay(self, failed_attempt: int, key: str = "") -> timedelta:
        """Return how long to wait after attempt `failed_attempt` failed, before the next."""
        base = self.initial_interval.total_seconds() * self.backoff ** (failed_attempt - 1)
        capped = min(base, self.maximum_interval.total_seconds())
        # Deterministic jitter: replicas and replays compute the same due time.
        digest = hashlib.sha256(f"{key}/{failed_attempt}".encode()).digest()
        spread = (digest[0] / 255.0) * 2 - 1
        return timedelta(seconds=max(capped * (1 + self.jitter * spread), 0.001))


DEFAULT_RETRY = RetryPolicy()
"""The retry policy of a step that names none."""
DEFAULT_COMPENSATION_RETRY = RetryPolicy(maximum_attempts=8, maximum_interval=timedelta(minutes=5))
"""Compensations get more attempts: giving up leaves the world half-undone."""
OUTAGE_RETRY = RetryPolicy(
    maximum_attempts=None,
    maximum_elapsed=timedelta(minutes=10),
    maximum_interval=timedelta(seconds=30),
)
"""For a step that talks to an outside system (a VIM): retried through outages of minutes."""
OUTAGE_COMPENSATION_RETRY = RetryPolicy(
    maximum_attempts=None,
    maximum_elapsed=timedelta(hours=2),
    maximum_interval=timedelta(minutes=1),
)
"""For its compensation: a much longer budget, since giving up leaves resources behind."""
