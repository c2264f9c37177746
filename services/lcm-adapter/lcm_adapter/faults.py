"""Fault injection for tests, configured by `CONVECTION_LCM_FAULTS` (JSON).

`{"fail_next": 2}` makes the next two commands fail as retryable (before any effect);
`{"fail_actions": ["lcm.configure-vnf"]}` makes every command of those actions fail for good,
so a test can drive a saga into compensation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from convection import StepFailed, StepRetryable


class LcmFaults(BaseModel):
    """What to break.

    Attributes:
        fail_next: Commands (of any action) that fail as retryable from start.
        fail_actions: Actions that always fail as business failures.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_next: Annotated[int, Field(ge=0)] = 0
    fail_actions: tuple[str, ...] = ()


class FaultInjector:
    """The live fault state: counts down `fail_next`, checks `fail_actions`."""

    def __init__(self, faults: LcmFaults | None = None) -> None:
        self._faults = faults or LcmFaults()
        self._remaining = self._faults.fail_next

    def check(self, action: str) -> None:
        """Raise the injected failure for `action`, if one is due."""
        if action in self._faults.fail_actions:
            raise StepFailed(f"{action} fails (injected)", code="injected_failure")
        # No await between test and decrement: concurrent handlers cannot both take the last.
        if self._remaining > 0:
            self._remaining -= 1
            raise StepRetryable(f"{action} failed for now (injected)", code="injected_fault")
