"""Broken: a payload builder names a step that does not exist."""

from __future__ import annotations

from sagas import Saga, Step, StepKind
from tests.sagapkgs.common import Input, Poke, Unpoke, poke, unpoke

SAGAS = [
    Saga(
        "toy.uses",
        input=Input,
        stages=(
            Step("first", Poke, poke, compensation=Unpoke, undo=unpoke),
            Step("second", Poke, poke, kind=StepKind.PIVOT, uses=("frist",)),
        ),
    )
]
