"""Base classes of the adapters' action payloads and results, and the catalogue of actions.

An action is a payload model that names its service and its action; its result model is what
the participant returns. The catalogue maps an action name to both, so a participant can
validate a command's payload and a coordinator can validate the result it records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from contracts.base import Model


class Result(Model):
    """Base of the result of an action, recorded by the coordinator with its step."""


class Action(Model):
    """Base of an action payload; subclasses set SERVICE, ACTION and RESULT."""

    SERVICE: ClassVar[str]
    """The participant service that performs the action (its command queue)."""
    ACTION: ClassVar[str]
    """The action's wire name, `<service>.<verb-noun>`."""
    RESULT: ClassVar[type[Result]]
    """The model a successful run returns."""


class UnknownAction(LookupError):
    """No action of that name is in the catalogue."""


class Catalogue:
    """Action names mapped to their payload models; built once from a list of action classes."""

    def __init__(self, actions: Iterable[type[Action]]) -> None:
        self._by_name: dict[str, type[Action]] = {}
        for action in actions:
            if not action.ACTION.startswith(action.SERVICE + "."):
                raise ValueError(
                    f"{action.__name__}: action {action.ACTION!r} must start with "
                    f"its service {action.SERVICE!r}"
                )
            if action.ACTION in self._by_name:
                raise ValueError(f"action {action.ACTION!r} is defined twice")
            self._by_name[action.ACTION] = action

    def __getitem__(self, name: str) -> type[Action]:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownAction(f"unknown action {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def all(self) -> Mapping[str, type[Action]]:
        """Return every action by name."""
        return dict(self._by_name)

    def for_service(self, service: str) -> list[type[Action]]:
        """Return the actions one service performs."""
        return [a for a in self._by_name.values() if service == a.SERVICE]
