"""Broken: a step whose service no participant could own (no queue can be named for it)."""

from __future__ import annotations

from typing import ClassVar

from contracts import Action, Result
from sagas import Saga, Step, StepKind
from tests.sagapkgs.common import Done, Input


class Nowhere(Action):
    """An action of a service whose name cannot name a queue."""

    SERVICE: ClassVar[str] = "Billing Dept"
    ACTION: ClassVar[str] = "Billing Dept.charge"
    RESULT: ClassVar[type[Result]] = Done


SAGAS = [
    Saga(
        "toy.nowhere",
        input=Input,
        stages=(Step("charge", Nowhere, lambda _ctx: Nowhere(), kind=StepKind.PIVOT),),
    )
]
