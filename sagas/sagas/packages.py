"""Saga packages: several teams' definitions checked together and merged into one Registry.

A saga package is an installed distribution whose entry point (group `convection.sagas`)
names a `Registry` or an iterable of `Saga`. Finding and importing them is the shell's job
(`coordinator.definitions`); this module is the pure part: everything about a set of
packages that can be checked without I/O, each broken rule named with its package, saga and
step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from contracts import Action
from sagas.dsl import Registry, Saga
from sagas.kinds import SagaDefinitionError
from sagas.steps import all_steps

GROUP = "convection.sagas"
"""The entry-point group through which a distribution offers saga definitions."""


class SagaPackageError(ValueError):
    """A saga package cannot be loaded; the message names package, saga, step and rule."""

    def __init__(
        self, package: str, saga: str | None, step: str | None, rule: str, detail: str
    ) -> None:
        where = f"package {package!r}"
        if saga:
            where += f", saga {saga!r}"
        if step:
            where += f", step {step!r}"
        super().__init__(f"{where}: {rule}: {detail}")
        self.package = package
        self.saga = saga
        self.step = step
        self.rule = rule


def definitions_of(package: str, obj: object) -> list[Saga[Any]]:
    """Return the sagas an entry point's object offers (a Registry or an iterable of Saga)."""
    if isinstance(obj, Registry):
        return list(obj)
    if isinstance(obj, Saga):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        items = list(obj)
        for item in items:
            if not isinstance(item, Saga):
                raise SagaPackageError(
                    package,
                    None,
                    None,
                    "an entry point names a Registry or Saga definitions",
                    f"it holds a {type(item).__name__}: {item!r:.80}",
                )
        return items
    raise SagaPackageError(
        package,
        None,
        None,
        "an entry point names a Registry or Saga definitions",
        f"it names a {type(obj).__name__}",
    )


def combine(packages: Sequence[tuple[str, object]]) -> Registry:
    """Check the packages' sagas together and return them as one Registry.

    Checks, across packages: a saga type's version is defined once; an action name means
    one model; a superseded saga type is loaded. Each error names the package at fault.
    """
    owner: dict[tuple[str, int], str] = {}
    models: dict[str, tuple[type[Action], str]] = {}
    everything: list[Saga[Any]] = []
    for package, obj in packages:
        for saga in definitions_of(package, obj):
            key = (saga.name, saga.version)
            if key in owner:
                first = owner[key]
                detail = (
                    f"version {saga.version} is also defined by package {first!r}"
                    if first != package
                    else f"version {saga.version} is defined twice"
                )
                raise SagaPackageError(package, saga.name, None, "unique saga types", detail)
            owner[key] = package
            _check_models(package, saga, models)
            everything.append(saga)
    try:
        return Registry(everything)
    except SagaDefinitionError as exc:
        package = next((p for (n, _v), p in owner.items() if n == exc.saga), "?")
        raise SagaPackageError(package, exc.saga, exc.step, exc.rule, exc.detail) from exc


def _check_models(
    package: str, saga: Saga[Any], models: dict[str, tuple[type[Action], str]]
) -> None:
    for step in all_steps(saga.stages):
        for action in (step.action, step.compensation):
            if action is None:
                continue
            known, where = models.setdefault(action.ACTION, (action, package))
            if known is not action:
                raise SagaPackageError(
                    package,
                    saga.name,
                    step.name,
                    "one model per action name",
                    f"{action.ACTION!r} is {action.__module__}.{action.__qualname__} here and "
                    f"{known.__module__}.{known.__qualname__} in package {where!r}",
                )
