"""What handling one message came to, as the consumers settle it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contracts import SagaStatus

OutcomeKind = Literal["applied", "ignored", "refused", "duplicate", "rejected", "skipped", "parked"]
"""How a message was handled; `rejected` ones are dead-lettered."""


@dataclass(frozen=True)
class Outcome:
    """What handling one event came to; `reason` is the dead-letter reason when rejected."""

    kind: OutcomeKind
    saga_id: str | None = None
    status: SagaStatus | None = None
    reason: str = ""
    note: str = ""
    errors: tuple[dict[str, Any], ...] = ()
    """For a rejected start of invalid input: the input's field errors."""


def rejected(reason: str, note: str, errors: Sequence[dict[str, Any]] = ()) -> Outcome:
    """Return the outcome of a message that must be dead-lettered with `reason`."""
    return Outcome("rejected", reason=reason, note=note, errors=tuple(errors))
