"""The echo participant: answers every bench step with a small result, at once or slowed.

Run: `convection participant convection_bench.noop.participant:echo`. It has no tables and
no effect to make idempotent: the runtime stores each outcome by idempotency key before it
replies, as it does for any participant, so the bench pays the same per-step costs a real
service would. `CONVECTION_BENCH_ECHO_DELAY_MS` (read once, when it starts) makes each step
take that long, so that sagas pile up in flight (the bench's `--participant-delay-ms`).
"""

from __future__ import annotations

import asyncio
import os

from sqlalchemy.ext.asyncio import AsyncEngine

from convection import Participant, StepContext, handles
from convection_bench.noop import actions as a

DELAY_ENV = "CONVECTION_BENCH_ECHO_DELAY_MS"
"""Environment variable: milliseconds each step takes (unset or 0: none)."""


class Echo:
    """The bench service's handler and its one setting."""

    def __init__(self) -> None:
        self.delay = 0.0

    async def configure(self, _db: AsyncEngine) -> None:
        """Read the delay once, as the participant starts (a start hook)."""
        raw = os.environ.get(DELAY_ENV, "").strip()
        try:
            millis = float(raw) if raw else 0.0
        except ValueError:
            raise ValueError(f"{DELAY_ENV}={raw!r} is not a number of milliseconds") from None
        if millis < 0:
            raise ValueError(f"{DELAY_ENV} must not be negative, not {millis}")
        self.delay = millis / 1000.0

    @handles(a.Echo)
    async def echo(self, cmd: a.Echo, ctx: StepContext) -> a.Echoed:
        """Answer the step, after the configured delay."""
        if self.delay:
            await asyncio.sleep(self.delay)
        return a.Echoed(ok=True, step=cmd.step)


_handler = Echo()
echo = Participant(a.SERVICE, handlers=[_handler.echo], on_start=[_handler.configure])
"""The echo participant of the bench service."""
