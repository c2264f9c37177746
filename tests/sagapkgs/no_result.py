"""Broken: an action without a result model."""

from __future__ import annotations

from typing import ClassVar

from contracts import Action
from sagas import Saga, Step, StepKind
from tests.sagapkgs.common import Input


class Shout(Action):
    """An action whose author forgot RESULT."""

    SERVICE: ClassVar[str] = "toy"
    ACTION: ClassVar[str] = "toy.shout"


SAGAS = [
    Saga(
        "toy.shout",
        input=Input,
        stages=(Step("shout", Shout, lambda _ctx: Shout(), kind=StepKind.PIVOT),),
    )
]
