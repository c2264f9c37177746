"""Convection's shared runtime: transport, database, and the participant SDK for adapters.

An adapter builds a `Participant` with objects whose methods are marked `@handles(Action)`;
see `convection.participant` for the flow of one command.
"""

from convection.participant import AFTER_EFFECT, FAILPOINTS, Participant
from convection.participant_api import StepContext, StepError, StepFailed, StepRetryable, handles
from convection.participant_metrics import ParticipantMetrics

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
