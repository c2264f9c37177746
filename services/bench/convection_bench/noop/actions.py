"""The wire models of the bench service: one no-op action and its small result."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts import Action, Result

SERVICE = "bench"
"""The participant service of every bench step (queue `convection.commands.bench`)."""


class Echoed(Result):
    """What the echo participant answers: a small JSON object naming the step it ran."""

    ok: bool
    step: int


class Echo(Action):
    """Do nothing and answer at once (or after the participant's configured delay)."""

    SERVICE: ClassVar[str] = SERVICE
    ACTION: ClassVar[str] = "bench.echo"
    RESULT: ClassVar[type[Result]] = Echoed
    step: int = Field(ge=1)
    payload: str = Field(max_length=1000)
