"""What an adapter's handler sees: the `handles` marker, its `StepContext` and its exceptions.

A handler is a method marked with `@handles(ActionModel)` on an object passed to the
`Participant`; it returns the action's result model. Exceptions are the failure channel::

    StepError                 base of what a handler raises on purpose
     ├── StepFailed           a business failure: reply `failed`, the saga compensates
     └── StepRetryable        a transient failure: reply `retryable`, retried per policy

Any other exception is treated like `StepRetryable` with the exception's text.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from contracts import Action, Command, Result
from contracts.base import JsonObject

HANDLES_ATTRIBUTE = "__convection_handles__"
"""Attribute the `handles` decorator sets on a handler function: the action model it serves."""

ProgressSink = Callable[[str, float | None], Awaitable[None]]
"""Publishes a progress reply (a heartbeat) for the step in hand."""

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


class StepError(Exception):
    """Base of the exceptions a handler raises to say how its step went.

    Args:
        message: What went wrong, for a human (it goes into the reply).
        code: A stable machine-readable code.
        uncertain: The attempt may have left an effect (its clean-up of partial work
            failed): the coordinator then compensates the step if it never succeeds. A
            participant that cannot prove it left nothing behind must say so.
    """

    default_code = "step_error"

    def __init__(self, message: str, *, code: str | None = None, uncertain: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.uncertain = uncertain


class StepFailed(StepError):
    """A business failure: retrying cannot help, so the saga compensates."""

    default_code = "failed"


class StepRetryable(StepError):
    """A transient failure: the coordinator retries the step per its policy."""

    default_code = "retryable"


def handles(action: type[Action]) -> Callable[[_F], _F]:
    """Mark an async method as the handler of `action` (registered when its object is passed)."""
    if not (inspect.isclass(action) and issubclass(action, Action)):
        raise TypeError(f"@handles needs an Action model, not {action!r}")

    def mark(function: _F) -> _F:
        candidate: object = function  # checked untyped, so mypy keeps `function` as _F
        if not inspect.iscoroutinefunction(candidate):
            raise TypeError(f"handler {function.__qualname__} must be `async def`")
        setattr(function, HANDLES_ATTRIBUTE, action)
        return function

    return mark


@dataclass(frozen=True)
class Route:
    """One registered handler: the action model it takes and the bound method to call."""

    action: type[Action]
    handler: Callable[[Any, StepContext], Awaitable[Result]]


def collect_routes(service: str, handlers: list[object]) -> dict[str, Route]:
    """Return the marked handlers of `handlers` by action name, checked against `service`.

    A handler is an object whose methods are marked `@handles`, or a marked function.

    Raises:
        ValueError: An action belongs to another service, or two handlers claim one action.
    """
    routes: dict[str, Route] = {}
    for owner in handlers:
        marked = getattr(owner, HANDLES_ATTRIBUTE, None)
        if marked is not None and callable(owner):
            found = [(getattr(owner, "__qualname__", repr(owner)), marked, owner)]
        else:
            found = []
            for name in dir(type(owner)):
                action = getattr(getattr(type(owner), name, None), HANDLES_ATTRIBUTE, None)
                if action is not None:
                    found.append((f"{type(owner).__name__}.{name}", action, getattr(owner, name)))
        for where, action, handler in found:
            if service != action.SERVICE:
                raise ValueError(
                    f"{where} handles {action.ACTION!r} of service {action.SERVICE!r}, "
                    f"not {service!r}"
                )
            if action.ACTION in routes:
                raise ValueError(f"two handlers for {action.ACTION!r}")
            routes[action.ACTION] = Route(action, handler)
    if not routes:
        raise ValueError(f"no @handles methods found for service {service!r}")
    return routes


@dataclass(frozen=True)
class StepContext:
    """The step a handler runs for, and a way to report progress.

    Attributes:
        saga_id: The saga the step belongs to.
        saga_type: The saga's type.
        step: The step's name.
        attempt: The attempt number (1 on the first try).
        compensation: True when this undoes an earlier step.
        idempotency_key: Stable across attempts: pass it to the system the step changes.
        undoes_key: On a compensation, the idempotency key of the step it undoes.
        deadline: When the coordinator stops waiting for this attempt, if set.
        forward_result: On a compensation, the stored result of the step it undoes, or None.
        command_id: The message id of the command being handled.
        action: The action's wire name.
    """

    saga_id: str
    saga_type: str
    step: str
    attempt: int
    compensation: bool
    idempotency_key: str
    undoes_key: str | None
    deadline: datetime | None
    forward_result: JsonObject | None
    command_id: str
    action: str
    _progress: ProgressSink = field(repr=False)

    async def progress(self, message: str, percent: float | None = None) -> None:
        """Publish a `progress` reply: a heartbeat that extends the step's deadline."""
        await self._progress(message, percent)

    @classmethod
    def of(
        cls, command: Command, forward_result: JsonObject | None, progress: ProgressSink
    ) -> StepContext:
        """Return the context of `command`, reporting progress through `progress`."""
        return cls(
            saga_id=command.saga_id,
            saga_type=command.saga_type,
            step=command.step,
            attempt=command.attempt,
            compensation=command.compensation,
            idempotency_key=command.idempotency_key,
            undoes_key=command.undoes_key,
            deadline=command.deadline,
            forward_result=forward_result,
            command_id=command.message_id,
            action=command.action,
            _progress=progress,
        )
