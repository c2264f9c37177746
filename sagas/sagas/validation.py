"""The rules a saga definition must keep; each broken rule names the saga, the step and the rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from contracts import Action, Result
from sagas.kinds import LockPolicy, SagaDefinitionError, StepKind
from sagas.steps import ForEach, Parallel, Stage, Step, all_steps


class Definition(Protocol):
    """What validation reads of a saga definition (`sagas.Saga` has all of it)."""

    @property
    def name(self) -> str:
        """The saga type's name."""

    @property
    def input(self) -> type[Any]:
        """The input model."""

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, in order."""

    @property
    def lock_policy(self) -> LockPolicy:
        """What happens when a resource is held."""

    @property
    def supersedes(self) -> tuple[str, ...]:
        """Saga types this one cancels when it supersedes."""

    @property
    def resources(self) -> Callable[[Any], Sequence[Any]] | None:
        """The resources the saga holds."""

    @property
    def timeout(self) -> timedelta | None:
        """The saga's deadline."""

    @property
    def version(self) -> int:
        """The definition's version."""


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def validate(saga: Definition) -> tuple[str, ...]:
    """Check every rule of `saga`; return its step and group names in stage order."""

    def fail(step: str | None, rule: str, detail: str) -> SagaDefinitionError:
        return SagaDefinitionError(saga.name, step, rule, detail)

    if not _NAME.match(saga.name):
        raise fail(None, "saga names are lower-case names", f"{saga.name!r}")
    if not (isinstance(saga.input, type) and issubclass(saga.input, BaseModel)):
        raise fail(None, "the input is a pydantic model", f"got {saga.input!r}")
    if not saga.stages:
        raise fail(None, "a saga has at least one step", "no stages")
    if saga.lock_policy is LockPolicy.SUPERSEDE and not saga.supersedes:
        raise fail(None, "supersede names what it supersedes", "supersedes is empty")
    if saga.lock_policy is not LockPolicy.WAIT and saga.resources is None:
        raise fail(None, "a lock policy needs resources", "resources is not set")
    if not (isinstance(saga.version, int) and saga.version >= 1):
        raise fail(None, "versions are whole numbers from 1", f"version {saga.version!r}")
    if saga.timeout is not None and saga.timeout <= timedelta(0):
        raise fail(None, "timeouts are positive", f"saga timeout {saga.timeout}")

    names: list[str] = []
    groups: set[str] = set()
    earlier: set[str] = set()
    committed: str | None = None  # the pivot or first retriable step: nothing after it undoes

    for stage in saga.stages:
        if isinstance(stage, Step):
            members, group = [stage], None
        elif isinstance(stage, Parallel):
            members, group = list(stage.steps), stage.name
            if len(members) < 2:
                raise fail(stage.name, "a parallel group has two steps or more", f"{len(members)}")
        elif isinstance(stage, ForEach):
            members, group = [stage.step], stage.name
        else:
            raise fail(None, "stages are Step, Parallel or ForEach", f"got {stage!r}")
        if group is not None:
            if group in names:
                raise fail(group, "unique step names", "the name is used twice")
            names.append(group)
            groups.add(group)
        stage_names: set[str] = set()
        for step in members:
            kind = _check_step(step, fail)
            if step.name in names or step.name in stage_names:
                raise fail(step.name, "unique step names", "the name is used twice")
            if kind is StepKind.PIVOT and group is not None:
                raise fail(step.name, "the pivot runs alone", f"it is inside group {group!r}")
            if committed is not None and kind is not StepKind.RETRIABLE:
                raise fail(
                    step.name,
                    "every step after the pivot is retriable",
                    f"it is {kind.value} but comes after {committed!r}",
                )
            for used in step.uses:
                if used not in earlier:
                    where = "runs later or in parallel" if used in _all_names(saga) else "unknown"
                    raise fail(
                        step.name,
                        "a payload builder reads earlier steps only",
                        f"uses {used!r}, which is {where}",
                    )
            stage_names.add(step.name)
        for step in members:
            if step.resolved_kind in (StepKind.PIVOT, StepKind.RETRIABLE) and committed is None:
                committed = step.name
        if isinstance(stage, ForEach):
            earlier.add(stage.name)
        else:
            names.extend(stage_names)
            earlier.update(stage_names)
            if isinstance(stage, Parallel):
                earlier.add(stage.name)
    pivots = [s.name for s in all_steps(saga.stages) if s.resolved_kind is StepKind.PIVOT]
    if len(pivots) > 1:
        raise fail(pivots[1], "a saga has at most one pivot", f"pivots: {pivots}")
    return tuple(names)


_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_action(action: Any, what: str, step: str, fail: Any) -> None:
    """Check that `action` is an Action a participant can own and answer.

    It names a service that can have a command queue, an action name under that service,
    and a result model the coordinator validates the participant's answer against.
    """
    if not (isinstance(action, type) and issubclass(action, Action)):
        raise fail(step, f"the {what} is a contracts Action", f"got {action!r}")
    service = getattr(action, "SERVICE", None)
    if not isinstance(service, str) or not _SERVICE.match(service):
        raise fail(
            step,
            f"the {what}'s service is a name a participant can own",
            f"{action.__name__}.SERVICE is {service!r}: lower-case letters, digits, - and _",
        )
    name = getattr(action, "ACTION", None)
    if not isinstance(name, str) or not name.startswith(service + ".") or len(name) > 100:
        raise fail(
            step,
            f"the {what}'s name starts with its service",
            f"{action.__name__}.ACTION is {name!r}, not '{service}.<verb-noun>'",
        )
    result = getattr(action, "RESULT", None)
    if not (isinstance(result, type) and issubclass(result, Result)):
        raise fail(
            step,
            f"the {what} has a result model",
            f"{action.__name__}.RESULT is {result!r}: set RESULT to a contracts Result model",
        )


def _check_step(step: Step, fail: Any) -> StepKind:
    if not _NAME.match(step.name):
        raise fail(step.name, "step names are lower-case names", f"{step.name!r}")
    check_action(step.action, "action", step.name, fail)
    if not callable(step.build):
        raise fail(step.name, "build is a function", f"got {step.build!r}")
    if step.timeout <= timedelta(0):
        raise fail(step.name, "timeouts are positive", f"{step.timeout}")
    kind = step.resolved_kind
    if kind is StepKind.COMPENSATABLE:
        if step.compensation is None or step.undo is None:
            raise fail(
                step.name,
                "a compensatable step has a compensation",
                "set compensation= and undo=, or kind=QUERY if it changes nothing",
            )
        check_action(step.compensation, "compensation", step.name, fail)
        if step.compensation.SERVICE != step.action.SERVICE:
            raise fail(
                step.name,
                "a compensation runs on the step's own service",
                f"{step.compensation.SERVICE!r} is not {step.action.SERVICE!r}",
            )
    elif step.compensation is not None or step.undo is not None:
        raise fail(
            step.name,
            f"a {kind.value} step is never compensated",
            "remove compensation= or make it compensatable",
        )
    return kind


def _all_names(saga: Definition) -> set[str]:
    names = {s.name for s in all_steps(saga.stages)}
    names.update(st.name for st in saga.stages if isinstance(st, Parallel | ForEach))
    return names
