"""Small pieces the test saga packages share."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from contracts import Action, Result


class Input(BaseModel):
    """A saga input with one field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "x"


class Done(Result):
    """A result with nothing in it."""


class Poke(Action):
    """An action of the `toy` service."""

    SERVICE: ClassVar[str] = "toy"
    ACTION: ClassVar[str] = "toy.poke"
    RESULT: ClassVar[type[Result]] = Done


class Unpoke(Action):
    """Its compensation."""

    SERVICE: ClassVar[str] = "toy"
    ACTION: ClassVar[str] = "toy.unpoke"
    RESULT: ClassVar[type[Result]] = Done


def poke(_ctx: Any) -> Poke:
    """Build a Poke."""
    return Poke()


def unpoke(_ctx: Any, _result: Any) -> Unpoke:
    """Build an Unpoke."""
    return Unpoke()
