"""A StartSaga's input on arrival: its secrets sealed, and compared with a saga that exists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from contracts import StartSaga
from convection.sealing import seal_paths
from coordinator.core import SagaState
from sagas import Registry, secret_paths


def sealed_input(
    registry: Registry, saga_type: str, raw: dict[str, Any], seal: Callable[[str], str] | None
) -> dict[str, Any]:
    """Return `raw` with the secrets of `saga_type`'s input sealed (as is without a sealer)."""
    # Sealed before anything is stored: no table, outbox row or log holds the secret.
    if seal is None or saga_type not in registry:
        return raw
    paths = secret_paths(registry.latest(saga_type).input)
    return seal_paths(raw, paths, seal) if paths else raw


def same_start(registry: Registry, existing: SagaState, msg: StartSaga) -> bool:
    """Tell whether `msg` asks for the saga that exists (a resend), not another one."""
    saga = registry.get(existing.saga_type, existing.definition_version)
    if saga is None or existing.saga_type != msg.saga_type:
        return False
    paths = secret_paths(saga.input)
    try:
        normalised: dict[str, Any] = saga.parse_input(msg.input).model_dump(mode="json")
    except ValidationError:
        return False
    return _masked(existing.input, paths) == _masked(normalised, paths)


def _masked(data: dict[str, Any], paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    # A sealed secret never equals its plaintext (nor another sealing of it): compare
    # inputs without their secrets.
    return seal_paths(data, paths, lambda _secret: "(secret)")
