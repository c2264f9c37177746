"""Fault injection: fail or slow down API calls on demand, by count or by operation name.

Every API call has an operation name (see `OPERATIONS`); admin endpoints and `/healthz` have
none and are never touched, so a test can always steer the simulator it is breaking.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vim_sim.errors import InjectedFault

OPERATIONS: frozenset[str] = frozenset(
    {
        "authenticate",
        "list_images",
        "get_image",
        "list_flavors",
        "get_flavor",
        "create_server",
        "get_server",
        "list_servers",
        "delete_server",
        "create_network",
        "get_network",
        "list_networks",
        "delete_network",
        "create_subnet",
        "get_subnet",
        "list_subnets",
        "delete_subnet",
    }
)
"""Names of the operations faults can target: one per API route (list and detail share one)."""


class FaultConfig(BaseModel):
    """What to break: the next `fail_next` calls, every call of `fail_operations`, added latency.

    Attributes:
        fail_next: Fail this many API calls from now on, whatever their operation.
        status: The HTTP status the injected failures answer with.
        latency_ms: Delay added before every API call, in milliseconds.
        fail_operations: Operations that fail every time, until the faults are reset.
        after_effect: Fail after the call took effect (a lost reply) instead of before it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_next: Annotated[int, Field(ge=0)] = 0
    status: Annotated[int, Field(ge=400, le=599)] = 503
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    fail_operations: tuple[str, ...] = ()
    after_effect: bool = False

    @field_validator("fail_operations")
    @classmethod
    def _known_operations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - OPERATIONS)
        if unknown:
            raise ValueError(
                f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(sorted(OPERATIONS))}"
            )
        return value


class FaultInjector:
    """The live fault state of one simulator; admin endpoints replace it, API calls consume it."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._config = config or FaultConfig()
        self._remaining = self._config.fail_next

    @property
    def config(self) -> FaultConfig:
        """Return the configuration in force, with `fail_next` counting the failures left."""
        return self._config.model_copy(update={"fail_next": self._remaining})

    def configure(self, config: FaultConfig) -> None:
        """Replace every fault with `config`."""
        self._config = config
        self._remaining = config.fail_next

    def reset(self) -> None:
        """Remove every fault."""
        self.configure(FaultConfig())

    async def before_call(self, operation: str) -> None:
        """Delay, then raise `InjectedFault` when this call must fail before taking effect."""
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)
        if not self._config.after_effect and self._should_fail(operation):
            raise InjectedFault(self._config.status, operation)

    def after_call(self, operation: str) -> None:
        """Raise `InjectedFault` when this call, which took effect, must lose its reply."""
        if self._config.after_effect and self._should_fail(operation):
            raise InjectedFault(self._config.status, operation)

    def _should_fail(self, operation: str) -> bool:
        # No await between test and decrement: two concurrent calls cannot both take the last one.
        if self._remaining > 0:
            self._remaining -= 1
            return True
        return operation in self._config.fail_operations
