"""`bench.noop`: S steps one after another, each a remote no-op on the echo participant.

A saga type has a fixed shape, so each number of steps is its own definition: `BENCH_SAGAS`
(the entry point `bench`) has the default three, and `steps_<S>` (any S from 1 to
`MAX_STEPS`) is built on first use, for `CONVECTION_SAGAS=convection_bench.noop.sagas:steps_5`.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from convection_bench.noop import actions as a
from sagas import BuildContext, Saga, Step, StepKind

SAGA_TYPE = "bench.noop"
"""The saga type of the bench workload."""
DEFAULT_STEPS = 3
"""Steps of the saga the `bench` entry point offers: the issue's workload."""
MAX_STEPS = 100
"""The most steps a `steps_<S>` reference may ask for."""


class NoopInput(BaseModel):
    """Input of bench.noop: how many steps the starter expects, and an opaque payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = Field(ge=1, le=MAX_STEPS)
    payload: str = Field(default="", max_length=1000)


def _echo(number: int) -> Any:
    def build(ctx: BuildContext[NoopInput]) -> a.Echo:
        return a.Echo(step=number, payload=ctx.input.payload)

    return build


@cache
def noop_saga(steps: int) -> Saga[NoopInput]:
    """Return bench.noop with `steps` retriable no-op steps (nothing to compensate)."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"bench.noop takes 1 to {MAX_STEPS} steps, not {steps}")
    return Saga(
        SAGA_TYPE,
        input=NoopInput,
        description=f"{steps} remote no-op steps, one after another (convection bench).",
        stages=tuple(
            Step(f"echo-{n}", a.Echo, _echo(n), kind=StepKind.RETRIABLE)
            for n in range(1, steps + 1)
        ),
    )


BENCH_SAGAS = (noop_saga(DEFAULT_STEPS),)
"""The package's entry point `bench`: bench.noop with the default three steps."""

_STEPS_REFERENCE = re.compile(r"steps_([0-9]{1,3})")


def reference(steps: int) -> str:
    """Return the CONVECTION_SAGAS item that loads bench.noop with `steps` steps."""
    return f"{__name__}:steps_{steps}"


def __getattr__(name: str) -> tuple[Saga[NoopInput]]:
    # `steps_<S>` exists for every S: a coordinator names the shape it runs in CONVECTION_SAGAS.
    match = _STEPS_REFERENCE.fullmatch(name)
    if match is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return (noop_saga(int(match.group(1))),)
