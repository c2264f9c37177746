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
    """How a step is retried after a transient failure: exponential backoff with a cap."""

    maximum_attempts: int = 5
    """Attempts in all, the first included; retriable steps ignore it and retry forever."""
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    maximum_interval: timedelta = timedelta(minutes=1)
    jitter: float = 0.2
    """Fraction of the delay to spread retries by, derived from the key so it stays pure."""

    def __post_init__(self) -> None:
        if self.maximum_attempts < 1:
            raise ValueError("maximum_attempts must be at least 1")
        if self.initial_interval <= timedelta(0) or self.maximum_interval < self.initial_interval:
            raise ValueError("need 0 < initial_interval <= maximum_interval")
        if self.backoff < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need backoff >= 1 and 0 <= jitter < 1")

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
