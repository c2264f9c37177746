"""The stages of a saga (`Step`, `Parallel`, `ForEach`) and what a payload builder sees.

`BuildContext` is what a builder reads; `PlannedStep` is a step expanded against one input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contracts import Action, Result
from sagas.kinds import RetryPolicy, StepKind, UndeclaredResultError

InputT = TypeVar("InputT", bound=BaseModel)
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class BuildContext(Generic[InputT]):
    """What a payload builder sees: the saga input, earlier results it declared, its item.

    Built by `Saga.payload` and `Saga.undo_payload`, never by hand.
    """

    saga_id: str
    input: InputT
    item: Any
    _results: Mapping[str, Result]
    _groups: Mapping[str, Mapping[str, Result]]
    _uses: frozenset[str]

    def result(self, step: str) -> Any:
        """Return the result of an earlier single step named in `uses`."""
        self._check(step)
        if step not in self._results:
            raise UndeclaredResultError(f"step {step!r} has no result")
        return self._results[step]

    def results(self, group: str) -> dict[str, Any]:
        """Return the results of an earlier group named in `uses`.

        By branch key for a ForEach group, by member step name for a Parallel group.
        """
        self._check(group)
        return dict(self._groups.get(group, {}))

    def _check(self, name: str) -> None:
        if name not in self._uses:
            raise UndeclaredResultError(
                f"the builder reads {name!r} but does not declare it in uses"
            )


Build = Callable[[BuildContext[Any]], Action]
"""A pure function building a step's action payload."""
Undo = Callable[[BuildContext[Any], Any], Action]
"""A pure function building a compensation payload from the step's result (None if unknown)."""


@dataclass(frozen=True)
class Step:
    """One step: invoke `action` with the payload `build` returns; undo it with `compensation`."""

    name: str
    action: type[Action]
    build: Build
    compensation: type[Action] | None = None
    undo: Undo | None = None
    kind: StepKind | None = None
    """Defaults to COMPENSATABLE when a compensation is given; otherwise it must be named."""
    uses: tuple[str, ...] = ()
    """Earlier steps or groups whose results `build` reads."""
    timeout: timedelta = timedelta(minutes=5)
    """How long one attempt may take without a reply or progress heartbeat."""
    retry: RetryPolicy | None = None
    compensation_retry: RetryPolicy | None = None

    @property
    def resolved_kind(self) -> StepKind:
        """The step's kind, with the default applied."""
        if self.kind is not None:
            return self.kind
        return StepKind.COMPENSATABLE if self.compensation is not None else StepKind.RETRIABLE


@dataclass(frozen=True)
class Parallel:
    """Steps that run at the same time; all must succeed before the next stage starts."""

    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ForEach(Generic[InputT, ItemT]):
    """One branch of `step` per item of the input, all run in parallel (e.g. one per VNF)."""

    name: str
    items: Callable[[InputT], Sequence[ItemT]]
    key: Callable[[ItemT], str]
    step: Step


Stage = Step | Parallel | ForEach[Any, Any]
"""What a saga is a sequence of."""


@dataclass(frozen=True)
class PlannedStep:
    """A concrete step of one saga, after ForEach groups are expanded against its input."""

    name: str
    """Unique in the saga; a ForEach branch is `<group>:<key>`."""
    stage: int
    group: str | None
    key: str | None
    spec: Step
    item: Any = None


def all_steps(stages: Sequence[Stage]) -> list[Step]:
    """Return every Step of `stages` (a ForEach group's step once), in stage order."""
    out: list[Step] = []
    for stage in stages:
        if isinstance(stage, Parallel):
            out.extend(stage.steps)
        elif isinstance(stage, ForEach):
            out.append(stage.step)
        else:
            out.append(stage)
    return out
