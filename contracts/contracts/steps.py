"""The step Command a coordinator sends to a participant, and the Reply that comes back."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from contracts.base import ErrorInfo, Identifier, JsonObject, Message, Model, Name, UtcDatetime

MAX_ATTEMPT = 2**31 - 1
"""Largest attempt number: the coordinator stores attempts in PostgreSQL `integer` columns."""

Outcome = Literal["succeeded", "failed", "retryable", "progress"]
"""How a step attempt went: done, failed for good, failed for now, or still working."""


class Command(Message):
    """Do (or undo) one step of a saga; sent to `convection.commands` keyed by service."""

    type: Literal["step.command"] = "step.command"
    saga_id: Identifier
    saga_type: Name
    step: str = Field(min_length=1, max_length=200)
    attempt: int = Field(ge=1, le=MAX_ATTEMPT)
    compensation: bool = False
    idempotency_key: str = Field(min_length=1, max_length=300)
    """Stable across attempts and redeliveries: passed on to the system the step changes."""
    deadline: UtcDatetime | None = None
    undoes_key: str | None = Field(default=None, max_length=300)
    """On a compensation: the idempotency key of the step it undoes, to find what that did."""
    service: Name
    action: str = Field(min_length=1, max_length=100)
    payload: JsonObject


class Progress(Model):
    """A heartbeat of a long step: it extends the step's deadline."""

    message: str = Field(default="", max_length=1000)
    percent: float | None = Field(default=None, ge=0, le=100)


class Reply(Message):
    """A participant's answer to a Command; sent to `convection.replies`."""

    type: Literal["step.reply"] = "step.reply"
    command_id: Identifier
    saga_id: Identifier
    step: str = Field(min_length=1, max_length=200)
    attempt: int = Field(ge=1, le=MAX_ATTEMPT)
    compensation: bool = False
    outcome: Outcome
    result: JsonObject | None = None
    error: ErrorInfo | None = None
    progress: Progress | None = None
    uncertain: bool = False
    """With `failed` or `retryable`: the participant cannot prove the attempt left no
    effect (its clean-up of partial work failed, or it crashed mid-way), so the step must be
    compensated if it never succeeds."""

    @model_validator(mode="after")
    def _fields_match_outcome(self) -> Self:
        if self.uncertain and self.outcome not in ("failed", "retryable"):
            raise ValueError("only a failed or retryable reply may be uncertain")
        if self.outcome == "succeeded" and (self.result is None or self.error is not None):
            raise ValueError("a succeeded reply carries a result and no error")
        if self.outcome in ("failed", "retryable") and (
            self.error is None or self.result is not None
        ):
            raise ValueError(f"a {self.outcome} reply carries an error and no result")
        if self.outcome == "progress" and (self.result is not None or self.error is not None):
            raise ValueError("a progress reply carries neither result nor error")
        return self


def reply_to(
    command: Command,
    outcome: Outcome,
    *,
    result: JsonObject | None = None,
    error: ErrorInfo | None = None,
    progress: Progress | None = None,
    uncertain: bool = False,
) -> Reply:
    """Build the reply to `command` (same saga, step, attempt and compensation flag)."""
    return Reply(
        command_id=command.message_id,
        saga_id=command.saga_id,
        step=command.step,
        attempt=command.attempt,
        compensation=command.compensation,
        outcome=outcome,
        result=result,
        error=error,
        progress=progress,
        uncertain=uncertain,
    )
