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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic

from contracts import Action, Result
from sagas.kinds import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    LockMode,
    LockPolicy,
    QueuedPolicy,
    RetryPolicy,
    SagaDefinitionError,
    Shared,
)
from sagas.steps import BuildContext, InputT, Parallel, PlannedStep, Stage, Step, all_steps
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
    resources: Callable[[InputT], Sequence[str | Shared]] | None = None
    """The resources the saga holds while it runs, e.g. `ns:<id>` (exclusively) or
    `Shared("vim:<id>")`."""
    lock_policy: LockPolicy = LockPolicy.WAIT
    supersedes: tuple[str, ...] = ()
    supersede_queued: QueuedPolicy = QueuedPolicy.KEEP
    """With SUPERSEDE: whether sagas of the superseded types queued behind it are cancelled."""
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

    def input_schema(self) -> dict[str, Any]:
        """Return the JSON Schema a StartSaga's input must match."""
        schema = self.input.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"{self.name} v{self.version} input"
        return schema

    def resource_patterns(self) -> tuple[tuple[str, LockMode], ...]:
        """Return the resources this saga type locks and how, with `<field>` for inputs.

        Found by running `resources` on an input whose every field is its own placeholder;
        a function that needs more than that is shown as computed from the input.
        """
        if self.resources is None:
            return ()
        fields: dict[str, Any] = {name: f"<{name}>" for name in self.input.model_fields}
        try:
            data = self.input.model_construct(None, **fields)
            shared = set(self.shared_of(data))
            return tuple(
                (r, LockMode.SHARED if r in shared else LockMode.EXCLUSIVE)
                for r in self.resources_of(data)
            )
        except Exception:
            return (("(computed from the input)", LockMode.EXCLUSIVE),)

    def resources_of(self, data: InputT) -> tuple[str, ...]:
        """Return the sorted, distinct resources this saga holds for one input."""
        if self.resources is None:
            return ()
        return tuple(sorted({_name(r) for r in self.resources(data)}))

    def shared_of(self, data: InputT) -> tuple[str, ...]:
        """Return the resources among `resources_of` that are held shared (sorted)."""
        if self.resources is None:
            return ()
        claimed = list(self.resources(data))
        exclusive = {r for r in claimed if isinstance(r, str)}
        return tuple(sorted({r.resource for r in claimed if isinstance(r, Shared)} - exclusive))

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


def _name(claim: str | Shared) -> str:
    return claim.resource if isinstance(claim, Shared) else claim


def _parse(planned: PlannedStep, raw: Mapping[str, Any]) -> Result:
    return planned.spec.action.RESULT.model_validate(raw)


class Registry:
    """The saga types a coordinator runs: every loaded version of each, by name.

    A new instance starts on a type's newest version (`latest`); a running instance stays on
    the version it started with (`get`). The action catalogue and the participant services
    are derived from the definitions.
    """

    def __init__(self, sagas: Iterable[Saga[Any]]) -> None:
        self._by_key: dict[tuple[str, int], Saga[Any]] = {}
        self._latest: dict[str, Saga[Any]] = {}
        actions: dict[str, type[Action]] = {}
        for saga in sagas:
            key = (saga.name, saga.version)
            if key in self._by_key:
                raise SagaDefinitionError(
                    saga.name,
                    None,
                    "one definition per version",
                    f"version {saga.version} is defined twice",
                )
            self._by_key[key] = saga
            if saga.name not in self._latest or self._latest[saga.name].version < saga.version:
                self._latest[saga.name] = saga
            for step in all_steps(saga.stages):
                for action in (step.action, step.compensation):
                    if action is None:
                        continue
                    known = actions.setdefault(action.ACTION, action)
                    if known is not action:
                        raise SagaDefinitionError(
                            saga.name,
                            step.name,
                            "one model per action name",
                            f"{action.ACTION!r} is both {_qualname(known)} and {_qualname(action)}",
                        )
        self._actions = actions
        for saga in self._by_key.values():
            for other in saga.supersedes:
                if other not in self._latest:
                    raise SagaDefinitionError(
                        saga.name, None, "supersedes a known saga", f"unknown saga type {other!r}"
                    )

    def __getitem__(self, name: str) -> Saga[Any]:
        """Return the newest version of saga type `name` (KeyError if unknown)."""
        return self._latest[name]

    def __contains__(self, name: object) -> bool:
        return name in self._latest

    def __iter__(self) -> Iterator[Saga[Any]]:
        """Every definition, by name then version."""
        return iter(sorted(self._by_key.values(), key=lambda s: (s.name, s.version)))

    def latest(self, name: str) -> Saga[Any]:
        """Return the newest version of saga type `name` (KeyError if unknown)."""
        return self._latest[name]

    def get(self, name: str, version: int) -> Saga[Any] | None:
        """Return version `version` of saga type `name`, or None if it is not loaded."""
        return self._by_key.get((name, version))

    def versions(self, name: str) -> tuple[int, ...]:
        """Return the loaded versions of saga type `name`, oldest first."""
        return tuple(sorted(v for n, v in self._by_key if n == name))

    def names(self) -> list[str]:
        """Return every saga type name, sorted."""
        return sorted(self._latest)

    def services(self) -> tuple[str, ...]:
        """Return every participant service a loaded saga sends commands to, sorted."""
        return tuple(sorted({a.SERVICE for a in self._actions.values()}))

    def actions(self) -> Mapping[str, type[Action]]:
        """Return every action (and compensation) a loaded saga uses, by its wire name."""
        return dict(self._actions)


def _qualname(action: type[Action]) -> str:
    return f"{action.__module__}.{action.__qualname__}"
