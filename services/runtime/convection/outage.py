"""Riding out an outage of a dependency (the database): keep the message, back off, go on.

A handler whose database is unreachable must not requeue its message: the redelivery comes
back at once, spends the queue's delivery limit in milliseconds and dead-letters a valid
message. `Outage.run` keeps the delivery instead and tries again in place, with jittered
exponential backoff, until the dependency answers. Every handler of the process that meets
the outage waits the same way, so the consumer's prefetch window fills and no new work is
taken meanwhile; the first success resumes them all. The outage is visible (`down_since`,
`reason`, for readiness) and logged once when it starts, then at most every `log_every`
seconds, then once when it ends; `on_change` hears each start and end (e.g. for a gauge).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Outage:
    """The state of one dependency for a process, and the way to wait through its outages."""

    def __init__(
        self,
        dependency: str,
        is_down: Callable[[BaseException], bool],
        *,
        initial: float = 0.2,
        maximum: float = 15.0,
        log_every: float = 30.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.dependency = dependency
        self._on_change = on_change
        self._is_down = is_down
        self._initial = initial
        self._maximum = maximum
        self._log_every = log_every
        self.down_since: datetime | None = None
        self.reason = ""
        self.failures = 0
        self._logged_at = 0.0

    @property
    def down(self) -> bool:
        """Tell whether the dependency is known to be unreachable now."""
        return self.down_since is not None

    def describe(self) -> str:
        """Return "ok", or since when and why the dependency is unreachable."""
        if self.down_since is None:
            return "ok"
        return f"unavailable since {self.down_since.isoformat()}: {self.reason}"

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it does not fail for the outage; other errors propagate."""
        delay = self._initial
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                if not self._is_down(exc):
                    raise
                self.failed(exc)
                # Jitter: replicas and handlers do not all knock at the same moment.
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
                delay = min(delay * 2, self._maximum)
                continue
            self.recovered()
            return result

    def failed(self, exc: BaseException) -> None:
        """Note one failure of the dependency (also for loops that retry on their own)."""
        self.failures += 1
        self.reason = f"{type(exc).__name__}: {exc}"[:500]
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
            self._logged_at = now
            if self._on_change is not None:
                self._on_change(True)
            logger.warning(
                "%s unavailable (%s): keeping the messages in hand and retrying with backoff",
                self.dependency,
                self.reason,
            )
        elif now - self._logged_at >= self._log_every:
            self._logged_at = now
            logger.warning(
                "%s still unavailable since %s (%d failed tries): %s",
                self.dependency,
                self.down_since.isoformat(),
                self.failures,
                self.reason,
            )

    def recovered(self) -> None:
        """Note that the dependency answered; the first success after an outage ends it."""
        if self.down_since is None:
            return
        seconds = (datetime.now(UTC) - self.down_since).total_seconds()
        logger.warning(
            "%s back after %.1f s (%d failed tries); going on",
            self.dependency,
            seconds,
            self.failures,
        )
        self.down_since = None
        self.reason = ""
        self.failures = 0
        if self._on_change is not None:
            self._on_change(False)
