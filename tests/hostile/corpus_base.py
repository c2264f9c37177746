"""The hostile corpus's vocabulary: where a case goes, the reasons it may expect, the `Hostile`
case itself, and the building blocks its bodies are made of (see `tests.hostile.corpus`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contracts import BAD_MESSAGE_REASONS, Command, Reply, StartSaga, encode, new_id
from sagas import example_files
from tests.unit.world import OSM_CATALOGUE

SAGAS = "sagas"
"""The coordinator's queue of StartSaga and CancelSaga (`convection.coordinator.sagas`)."""
REPLIES = "replies"
"""The coordinator's queue of step replies (`convection.coordinator.replies`)."""
COMMANDS = "commands"
"""An adapter's command queue (`convection.commands.<service>`)."""
API = "api"
"""The body of `POST /sagas` on the coordinator's HTTP API."""
TARGETS = frozenset({SAGAS, REPLIES, COMMANDS, API})

QUEUES = frozenset({SAGAS, REPLIES, COMMANDS})
"""Decode-level cases are refused the same way on every queue."""
ANYWHERE = QUEUES | {API}
"""Cases refused before the body's shape matters: by `contracts.parse_json`."""
PARSE_REASONS = frozenset(
    (
        "too_large",
        "invalid_json",
        "too_deep",
        "nul_character",
        "invalid_unicode",
        "non_finite_number",
    )
)
"""The reasons `contracts.parse_json` gives."""

CONSUMER_REASONS = (
    "unexpected_type",
    "unknown_saga_type",
    "invalid_input",
    "unknown_saga",
    "unknown_step",
    "conflict",
    "wrong_service",
    "wrong_message",
    "unknown_action",
    "forged",
)
"""Reasons a consumer gives for a body that decodes: the message is wrong where it arrived.

unexpected_type: a valid message on the wrong coordinator queue; wrong_message: one on a
command queue. conflict: a StartSaga for an existing saga id with another input. forged: a
reply or command not published by the broker user the consumer expects.
"""
DUPLICATE = "duplicate"
"""Not a dead-letter reason: the message is a duplicate, acked and ignored."""
EXPECTATIONS = frozenset(BAD_MESSAGE_REASONS) | frozenset(CONSUMER_REASONS) | {DUPLICATE}

INTRUDER = "intruder"
"""The broker user the forged cases are published as."""
UNKNOWN_SAGA_TYPE = "no.such-saga"
"""A well-formed saga type that no registry knows: cases that must get past decoding use it."""


@dataclass(frozen=True, kw_only=True)
class Hostile:
    """One hostile input: publish `body` to each of `targets`, expect `expect`."""

    name: str
    """Unique and kebab-case: the test id."""
    body: bytes = field(repr=False)
    """The exact bytes to publish (some are megabytes: kept out of the repr)."""
    expect: str
    """The dead-letter reason the consumer must give, or `duplicate` (one of EXPECTATIONS)."""
    targets: frozenset[str]
    """Where the case applies: some of SAGAS, REPLIES, COMMANDS and API."""
    note: str
    """Why the case exists, or what it used to do."""
    headers: dict[str, str] = field(default_factory=dict)
    """AMQP headers to publish with (or HTTP headers, for the API)."""
    user_id: str | None = None
    """The broker user to publish as; None: the one the consumer expects."""
    repeat: int = 1
    """How often to publish the same body; `expect` is what the last copy gets."""

    @property
    def decode_level(self) -> bool:
        """Whether `contracts.decode` alone gives the reason, on any queue it targets."""
        return self.expect in BAD_MESSAGE_REASONS and bool(self.targets & QUEUES)

    @property
    def parse_level(self) -> bool:
        """Whether `contracts.parse_json` alone gives the reason, whatever the body's shape."""
        return self.expect in PARSE_REASONS


# -- building blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Real:
    saga_id: str
    step: str
    command_id: str
    saga_type: str
    service: str
    conflicting_input: dict[str, Any]


def _example(saga_type: str) -> dict[str, Any]:
    path = example_files.directory() / f"{saga_type.replace('.', '-')}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _conflicting(saga_type: str) -> dict[str, Any]:
    data = _example(saga_type)
    if "name" not in data:
        raise ValueError(f"{saga_type}: pass conflicting_input (its example has no name)")
    data["name"] = f"{data['name']}-conflicting"
    return data


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _as_dict(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(message))
    return data


def _start(**changes: Any) -> dict[str, Any]:
    """A StartSaga of an unknown saga type: it decodes, and the coordinator refuses it."""
    return {**_as_dict(StartSaga(saga_type=UNKNOWN_SAGA_TYPE, saga_id=_fresh())), **changes}


def _reply(**changes: Any) -> dict[str, Any]:
    reply = Reply(command_id="c-1", saga_id="s-1", step="validate", attempt=1, outcome="progress")
    return {**_as_dict(reply), **changes}


def _command(service: str = "vim", **changes: Any) -> dict[str, Any]:
    action = OSM_CATALOGUE.for_service(service)[0].ACTION
    command = Command(
        saga_id="s-1",
        saga_type="vim-account.create",
        step="validate",
        attempt=1,
        idempotency_key="s-1/validate",
        service=service,
        action=action,
        payload={},
    )
    return {**_as_dict(command), **changes}


def _fresh() -> str:
    return f"hostile-{new_id()}"


def _pad(body: bytes, size: int) -> bytes:
    # Trailing whitespace is legal JSON, so padding keeps the message itself unchanged.
    assert len(body) <= size
    return body + b" " * (size - len(body))


def _nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}
