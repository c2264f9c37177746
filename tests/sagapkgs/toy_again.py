"""Broken together with `toy`: it defines toy.poke version 1 too."""

from __future__ import annotations

from sagas import Saga, Step, StepKind
from tests.sagapkgs.common import Input, Poke, poke

SAGAS = [Saga("toy.poke", input=Input, stages=(Step("again", Poke, poke, kind=StepKind.PIVOT),))]
