"""The saga DSL: a saga is immutable data, validated when it is built.

A `Saga` is a list of stages run one after another; a stage is one `Step`, a static
`Parallel` group, or a `ForEach` group whose branches come from the saga's input. Each step
names the participant action it invokes, a pure function that builds the action's payload from
the saga input and earlier results, and, for a compensatable step, the action that undoes it.

Richardson's kinds: compensatable steps come first, the pivot commits the saga, and every step
after it is retriable (retried until it succeeds, never compensated). A `QUERY` step reads and
changes nothing, so it needs no compensation.

Errors::

    SagaDefinitionError   a definition breaks a rule; the message names saga, step and rule
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contracts import Action, Result

InputT = TypeVar("InputT", bound=BaseModel)
ItemT = TypeVar("ItemT")


class SagaDefinitionError(ValueError):
    """A saga definition breaks a rule; raised when the definition is built."""

    def __init__(self, saga: str, step: str | None, rule: str, detail: str) -> None:
        where = f"saga {saga!r}" + (f", step {step!r}" if step else "")
        super().__init__(f"{where}: {rule}: {detail}")
        self.saga = saga
        self.step = step
        self.rule = rule


class StepKind(StrEnum):
    """Richardson's step kinds, plus read-only queries."""

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"
    QUERY = "query"


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried after a transient failure: exponential backoff with a cap."""

    maximum_attempts: int = 5
    """Attempts in all, the first included; retriable steps ignore it and retry forever."""
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    maximum_interval: timedelta = timedelta(minutes=1)
    jitter: float = 0.2
    """Fraction of the delay to spread retries by, derived from the key so it stays pure."""

    def __post_init__(self) -> None:
        if self.maximum_attempts < 1:
            raise ValueError("maximum_attempts must be at least 1")
        if self.initial_interval <= timedelta(0) or self.maximum_interval < self.initial_interval:
            raise ValueError("need 0 < initial_interval <= maximum_interval")
        if self.backoff < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need backoff >= 1 and 0 <= jitter < 1")

    def delay(self, failed_attempt: int, key: str = "") -> timedelta:
        """Return how long to wait after attempt `failed_attempt` failed, before the next."""
        base = self.initial_interval.total_seconds() * self.backoff ** (failed_attempt - 1)
        capped = min(base, self.maximum_interval.total_seconds())
        # Deterministic jitter: replicas and replays compute the same due time.
        digest = hashlib.sha256(f"{key}/{failed_attempt}".encode()).digest()
        spread = (digest[0] / 255.0) * 2 - 1
        return timedelta(seconds=max(capped * (1 + self.jitter * spread), 0.001))


DEFAULT_RETRY = RetryPolicy()
"""The retry policy of a step that names none."""
DEFAULT_COMPENSATION_RETRY = RetryPolicy(maximum_attempts=8, maximum_interval=timedelta(minutes=5))
"""Compensations get more attempts: giving up leaves the world half-undone."""


class UndeclaredResultError(LookupError):
    """A payload builder read the result of a step it does not declare in `uses`."""


@dataclass(frozen=True)
class BuildContext(Generic[InputT]):
    """What a payload builder sees: the saga input, earlier results it declared, its item."""

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
        """Return the results of an earlier ForEach group named in `uses`, by branch key."""
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


class LockPolicy(StrEnum):
    """What a saga does when another saga holds a resource it needs."""

    WAIT = "wait"
    """Queue in FIFO order until the holder finishes."""
    REJECT = "reject"
    """Fail at once with `resource_busy`."""
    SUPERSEDE = "supersede"
    """Cancel holders of the types in `supersedes`, then go first; wait for any other holder."""


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
        from sagas.validation import validate

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
