"""The saga DSL: a saga is immutable data, validated when it is built.

A `Saga` is a list of stages run one after another; a stage is one `Step`, a static
`Parallel` group, or a `ForEach` group whose branches come from the saga's input. Each step
names the participant action it invokes, a pure function that builds the action's payload from
the saga input and earlier results, and, for a compensatable step, the action that undoes it.

Richardson's kinds: compensatable steps come first, the pivot commits the saga, and every step
after it is retriable (retried until it succeeds, never compensated). A `QUERY` step reads and
changes nothing, so it needs no compensation.

Modules, one way: `kinds` (policies, errors) <- `steps` (stages, contexts) <- `validation`
<- `dsl` (Saga, Registry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic

from contracts import Action, Result
from sagas.kinds import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    LockPolicy,
    RetryPolicy,
    SagaDefinitionError,
)
from sagas.steps import BuildContext, InputT, Parallel, PlannedStep, Stage, Step
from sagas.validation import validate

RawResults = Mapping[str, Mapping[str, Any] | None]
"""Step name -> the JSON result a succeeded step recorded."""


@dataclass(frozen=True)
class Saga(Generic[InputT]):
    """A saga type: named, versioned, validated when built."""

    name: str
    input: type[InputT]
    stages: tuple[Stage, ...]
    version: int = 1
    description: str = ""
    resources: Callable[[InputT], Sequence[str]] | None = None
    """The resources the saga holds while it runs, e.g. `ns:<id>`."""
    lock_policy: LockPolicy = LockPolicy.WAIT
    supersedes: tuple[str, ...] = ()
    timeout: timedelta | None = None
    """A deadline for the whole saga; past it the saga is cancelled (unless past its pivot)."""
    retry: RetryPolicy = DEFAULT_RETRY
    compensation_retry: RetryPolicy = DEFAULT_COMPENSATION_RETRY
    _names: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", validate(self))

    def step_names(self) -> tuple[str, ...]:
        """Return the names of every step and group, in stage order."""
        return self._names

    def parse_input(self, raw: Mapping[str, Any]) -> InputT:
        """Validate a raw input object against the saga's input model."""
        return self.input.model_validate(raw)

    def plan(self, data: InputT) -> tuple[PlannedStep, ...]:
        """Expand the stages against one input into the concrete steps of that saga."""
        planned: list[PlannedStep] = []
        for index, stage in enumerate(self.stages):
            if isinstance(stage, Step):
                planned.append(PlannedStep(stage.name, index, None, None, stage))
            elif isinstance(stage, Parallel):
                planned.extend(PlannedStep(s.name, index, stage.name, None, s) for s in stage.steps)
            else:
                for item in stage.items(data):
                    key = stage.key(item)
                    name = f"{stage.name}:{key}"
                    planned.append(PlannedStep(name, index, stage.name, key, stage.step, item))
        return tuple(planned)

    def resources_of(self, data: InputT) -> tuple[str, ...]:
        """Return the sorted, distinct resources this saga holds for one input."""
        if self.resources is None:
            return ()
        return tuple(sorted(set(self.resources(data))))

    def retry_of(self, step: Step, *, compensation: bool) -> RetryPolicy:
        """Return the retry policy of a step (or of its compensation)."""
        if compensation:
            return step.compensation_retry or self.compensation_retry
        return step.retry or self.retry

    def payload(
        self, planned: PlannedStep, *, saga_id: str, data: InputT, results: RawResults
    ) -> Action:
        """Run the step's payload builder with the earlier results it declares.

        Raises whatever the builder raises: it is the saga author's code.
        """
        return planned.spec.build(
            self.context(planned, saga_id=saga_id, data=data, results=results)
        )

    def undo_payload(
        self,
        planned: PlannedStep,
        *,
        saga_id: str,
        data: InputT,
        results: RawResults,
        own: Mapping[str, Any] | None,
    ) -> Action:
        """Run the step's compensation builder with the result the step recorded (or None)."""
        spec = planned.spec
        if spec.undo is None:
            raise SagaDefinitionError(self.name, planned.name, "undo of a step", "no undo=")
        ctx = self.context(planned, saga_id=saga_id, data=data, results=results)
        recorded = spec.action.RESULT.model_validate(own) if own is not None else None
        return spec.undo(ctx, recorded)

    def context(
        self, planned: PlannedStep, *, saga_id: str, data: InputT, results: RawResults
    ) -> BuildContext[InputT]:
        """Return what the step's builders see: the input, its item, the results it uses.

        `results` holds the recorded results of succeeded steps by step name; only those the
        step declares in `uses` are parsed (each with its action's result model), grouped by
        branch key for a ForEach group and by member name for a Parallel group.
        """
        uses = frozenset(planned.spec.uses)
        singles: dict[str, Result] = {}
        groups: dict[str, dict[str, Result]] = {}
        by_name = {p.name: p for p in self.plan(data)} if uses else {}
        for name, raw in results.items():
            if raw is None:
                continue
            other = by_name.get(name)
            if other is None:
                continue
            if other.group is not None and other.group in uses:
                member = other.key if other.key is not None else other.name
                groups.setdefault(other.group, {})[member] = _parse(other, raw)
            if name in uses:
                singles[name] = _parse(other, raw)
        return BuildContext(
            saga_id=saga_id,
            input=data,
            item=planned.item,
            _results=singles,
            _groups=groups,
            _uses=uses,
        )


def _parse(planned: PlannedStep, raw: Mapping[str, Any]) -> Result:
    return planned.spec.action.RESULT.model_validate(raw)


class Registry:
    """The saga types a coordinator runs, by name."""

    def __init__(self, sagas: Sequence[Saga[Any]]) -> None:
        self._by_name: dict[str, Saga[Any]] = {}
        for saga in sagas:
            if saga.name in self._by_name:
                raise SagaDefinitionError(saga.name, None, "unique saga names", "defined twice")
            self._by_name[saga.name] = saga
        for saga in sagas:
            for other in saga.supersedes:
                if other not in self._by_name:
                    raise SagaDefinitionError(
                        saga.name, None, "supersedes a known saga", f"unknown saga type {other!r}"
                    )

    def __getitem__(self, name: str) -> Saga[Any]:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        """Return every saga type name, sorted."""
        return sorted(self._by_name)
