"""Convection's shared runtime: transport, database, and the participant SDK for adapters.

An adapter builds a `Participant` with objects whose methods are marked `@handles(Action)`;
see `convection.participant` for the flow of one command. The names here are imported on
first use, so the `convection` command line starts without the I/O stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convection.participant import AFTER_EFFECT, FAILPOINTS, Participant
    from convection.participant_api import (
        StepContext,
        StepError,
        StepFailed,
        StepRetryable,
        handles,
    )
    from convection.participant_metrics import ParticipantMetrics

_WHERE = {
    "AFTER_EFFECT": "convection.participant",
    "FAILPOINTS": "convection.participant",
    "Participant": "convection.participant",
    "StepContext": "convection.participant_api",
    "StepError": "convection.participant_api",
    "StepFailed": "convection.participant_api",
    "StepRetryable": "convection.participant_api",
    "handles": "convection.participant_api",
    "ParticipantMetrics": "convection.participant_metrics",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'convection' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AFTER_EFFECT",
    "FAILPOINTS",
    "Participant",
    "ParticipantMetrics",
    "StepContext",
    "StepError",
    "StepFailed",
    "StepRetryable",
    "handles",
]
