"""A good package: toy.poke, in two versions."""

from __future__ import annotations

from sagas import Saga, Step, StepKind
from tests.sagapkgs.common import Input, Poke, Unpoke, poke, unpoke

V1 = Saga(
    "toy.poke",
    input=Input,
    stages=(
        Step("poke", Poke, poke, compensation=Unpoke, undo=unpoke),
        Step("done", Poke, poke, kind=StepKind.PIVOT),
    ),
)
V2 = Saga(
    "toy.poke",
    version=2,
    input=Input,
    stages=(Step("poke", Poke, poke, kind=StepKind.PIVOT),),
)
SAGAS = (V1, V2)
