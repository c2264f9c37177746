"""Convection's wire contracts: every message that crosses the broker, as pydantic models.

Pure data, no I/O. Import modules qualified: `from contracts import ro` then `ro.DeployVdus`.
"""

from contracts import actions, lcm, ro, topology, vim
from contracts.actions import Action, Catalogue, Result, UnknownAction
from contracts.base import SCHEMA_VERSION, ErrorInfo, Message, Model, UtcDatetime, new_id, utc_now
from contracts.jsonsafe import (
    BAD_MESSAGE_REASONS,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    BadMessage,
    BadMessageReason,
    parse_json,
)
from contracts.messages import AnyMessage, decode, encode
from contracts.saga import (
    REJECTED,
    TERMINAL_STATUSES,
    CancelSaga,
    SagaEvent,
    SagaStatus,
    StartSaga,
    WakeSaga,
)
from contracts.steps import Command, Outcome, Progress, Reply, reply_to

__all__ = [
    "BAD_MESSAGE_REASONS",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_BYTES",
    "REJECTED",
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "Action",
    "AnyMessage",
    "BadMessage",
    "BadMessageReason",
    "CancelSaga",
    "Catalogue",
    "Command",
    "ErrorInfo",
    "Message",
    "Model",
    "Outcome",
    "Progress",
    "Reply",
    "Result",
    "SagaEvent",
    "SagaStatus",
    "StartSaga",
    "UnknownAction",
    "UtcDatetime",
    "WakeSaga",
    "actions",
    "decode",
    "encode",
    "lcm",
    "new_id",
    "parse_json",
    "reply_to",
    "ro",
    "topology",
    "utc_now",
    "vim",
]
