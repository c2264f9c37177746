"""The replies a participant sends: their stable ids and how a stored outcome is re-sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from contracts import Command, ErrorInfo, Reply, reply_to
from convection.participant_api import StepFailed, StepRetryable
from convection.participant_store import StoredReply

UNCERTAIN = "uncertain"
"""The stored outcome of a `failed` reply that may have left an effect (re-sent as such)."""

_REPLY_NAMESPACE = uuid.UUID("6f1d4c4e-2b7a-4c57-9a53-2f0b4d1f7a10")


def final_reply_id(command_id: str) -> str:
    """Return the message id of the final reply to `command_id`: the same on every re-send.

    A re-sent reply (redelivery, duplicate command) then carries the id of the first, so the
    coordinator's inbox drops it as a duplicate.
    """
    return uuid.uuid5(_REPLY_NAMESPACE, f"{command_id}/final").hex


def as_reply(command: Command, stored: StoredReply) -> Reply:
    """Return the reply a stored final outcome stands for, addressed to `command`."""
    if stored.outcome == "succeeded":
        return reply_to(command, "succeeded", result=stored.result or {})
    error = ErrorInfo.model_validate(stored.error)
    return reply_to(command, "failed", error=error, uncertain=stored.outcome == UNCERTAIN)


def validation_summary(exc: ValidationError) -> str:
    """Return the first errors of a payload's validation, one line, for a `failed` reply."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:10]
    ]
    return "; ".join(parts)[:4000]


@dataclass(frozen=True)
class Answer:
    """What a handler's exception answers: `failed` (final) or `retryable`, and how sure."""

    outcome: Literal["failed", "retryable"]
    error: ErrorInfo
    uncertain: bool

    def describe(self) -> str:
        """Return " (code)", with " and uncertain" when it is, for the log line."""
        return f" ({self.error.code}{', uncertain' if self.uncertain else ''})"

    def stored(self) -> StoredReply:
        """Return the final outcome to store for a `failed` answer."""
        return StoredReply(
            UNCERTAIN if self.uncertain else "failed", None, self.error.model_dump(mode="json")
        )


def answer_to(exc: Exception) -> Answer:
    """Return what a handler's exception answers.

    StepFailed and StepRetryable say so themselves (with their `uncertain`); anything else is
    a bug or an unexpected error, transient until proven otherwise and never certain: it may
    have struck after an effect.
    """
    if isinstance(exc, StepFailed | StepRetryable):
        outcome: Literal["failed", "retryable"] = (
            "failed" if isinstance(exc, StepFailed) else "retryable"
        )
        error = ErrorInfo(code=exc.code[:64], message=exc.message[:4000])
        return Answer(outcome, error, exc.uncertain)
    message = f"{type(exc).__name__}: {exc}"[:4000]
    return Answer("retryable", ErrorInfo(code="exception", message=message), True)
