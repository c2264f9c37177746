"""Which saga definitions a coordinator runs: found in installed packages, checked at start.

A distribution offers sagas through the entry-point group `convection.sagas` (an entry point
names a `sagas.Registry` or an iterable of `Saga`); the `convection-sagas` distribution offers
the OSM sagas as `osm`. `CONVECTION_SAGAS` chooses: unset, every installed entry point; set,
a comma-separated list of entry-point names and `module:attr` references (which need not be
installed as entry points). Everything that can be checked without I/O is checked here, at
start, so a broken package stops the coordinator (exit 2, the message naming the package,
saga, step and rule) instead of failing at the first reply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points

from sagas import GROUP, Registry, SagaDefinitionError, SagaPackageError, combine

EntryPoints = Callable[[], Iterable[EntryPoint]]
"""Where entry points come from (tests hand in their own)."""


def _installed() -> Iterable[EntryPoint]:
    return entry_points(group=GROUP)


def load_registry(selection: str | None = None, *, found: EntryPoints = _installed) -> Registry:
    """Return the registry of the chosen saga packages, or raise SagaPackageError."""
    installed = {ep.name: ep for ep in found()}
    chosen: list[tuple[str, Callable[[], object]]] = []
    if not selection or not selection.strip():
        chosen = [(_label(ep), ep.load) for _name, ep in sorted(installed.items())]
    else:
        for item in (part.strip() for part in selection.split(",")):
            if not item:
                continue
            if ":" in item:
                chosen.append((item, _reference(item)))
            elif item in installed:
                chosen.append((_label(installed[item]), installed[item].load))
            else:
                known = ", ".join(sorted(installed)) or "none"
                raise SagaPackageError(
                    item,
                    None,
                    None,
                    "CONVECTION_SAGAS names installed entry points or module:attr references",
                    f"no entry point {item!r} in group {GROUP!r} (installed: {known})",
                )
    if not chosen:
        raise SagaPackageError(
            "(none)",
            None,
            None,
            "a coordinator runs at least one saga package",
            f"no entry point in group {GROUP!r} is installed; install one or set CONVECTION_SAGAS",
        )
    return combine([(label, _load(label, load)) for label, load in chosen])


def _label(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "?"
    return f"{dist}:{ep.name}"


def _reference(item: str) -> Callable[[], object]:
    module_name, _, attr = item.partition(":")

    def load() -> object:
        value: object = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
        return value

    return load


def _load(label: str, load: Callable[[], object]) -> object:
    try:
        return load()
    except SagaDefinitionError as exc:
        # A definition is checked when it is built, so a broken one fails its import.
        raise SagaPackageError(label, exc.saga, exc.step, exc.rule, exc.detail) from exc
    except Exception as exc:
        raise SagaPackageError(
            label, None, None, "the package imports", f"{type(exc).__name__}: {exc}"
        ) from exc
