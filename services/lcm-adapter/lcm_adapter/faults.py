"""Fault injection for tests, configured by `CONVECTION_LCM_FAULTS` (JSON).

`{"fail_next": 2}` makes the next two commands fail as retryable (before any effect);
`{"fail_actions": ["lcm.configure-vnf"]}` makes every command of those actions fail for good,
so a test can drive a saga into compensation; `{"crash_actions": ["lcm.configure-vnf"]}` gives
the handlers of those actions a bug (see `crashing`), so their commands are dead-lettered.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from convection import StepContext, StepFailed, StepRetryable


class LcmFaults(BaseModel):
    """What to break.

    Attributes:
        fail_next: Commands (of any action) that fail as retryable from start.
        fail_actions: Actions that always fail as business failures.
        crash_actions: Actions whose handler has a bug: it returns no result (before any
            effect), which the participant cannot reply to, so every delivery fails until the
            command is dead-lettered with reason `handler_crashed`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_next: Annotated[int, Field(ge=0)] = 0
    fail_actions: tuple[str, ...] = ()
    crash_actions: tuple[str, ...] = ()


class FaultInjector:
    """The live fault state: counts down `fail_next`, checks `fail_actions`."""

    def __init__(self, faults: LcmFaults | None = None) -> None:
        self._faults = faults or LcmFaults()
        self._remaining = self._faults.fail_next

    def crashes(self, action: str) -> bool:
        """Tell whether the handler of `action` is to behave as if it had a bug."""
        return action in self._faults.crash_actions

    def check(self, action: str) -> None:
        """Raise the injected failure for `action`, if one is due."""
        if action in self._faults.fail_actions:
            raise StepFailed(f"{action} fails (injected)", code="injected_failure")
        # No await between test and decrement: concurrent handlers cannot both take the last.
        if self._remaining > 0:
            self._remaining -= 1
            raise StepRetryable(f"{action} failed for now (injected)", code="injected_fault")


class Faulty(Protocol):
    """Handlers that carry a `FaultInjector`."""

    @property
    def faults(self) -> FaultInjector:
        """The live fault state."""
        ...


_H = TypeVar("_H", bound=Faulty)
_C = TypeVar("_C")
_R = TypeVar("_R")


def crashing(
    method: Callable[[_H, _C, StepContext], Awaitable[_R]],
) -> Callable[[_H, _C, StepContext], Awaitable[_R]]:
    """Make a handler return nothing for an action in `crash_actions`: the bug it simulates.

    An exception raised in a handler is answered `retryable` by the participant; a handler
    that returns no result leaves the participant without a true reply, so the delivery
    fails (TypeError) until it is dead-lettered.
    """

    @functools.wraps(method)
    async def run(self: _H, cmd: _C, ctx: StepContext) -> _R:
        if self.faults.crashes(ctx.action):
            forgotten: Any = None
            return forgotten  # type: ignore[no-any-return]
        return await method(self, cmd, ctx)

    return run
