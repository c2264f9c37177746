"""A corpus of hostile inputs: what to send to which queue, and the reason it must be refused.

Every case is data: a body (bytes, exactly as published), the queues or endpoints it applies
to, and `expect`, the reason the consumer must give when it dead-letters the body: a decode
reason (`contracts.BAD_MESSAGE_REASONS`, decided by `contracts.decode` alone, whatever the
queue), a consumer reason (`CONSUMER_REASONS`, needs a running system), or `duplicate` (acked
as a duplicate, not dead-lettered).

Decisions the corpus pins down:

- A body of exactly `MAX_MESSAGE_BYTES` is accepted; one byte more is `too_large`. The size
  check comes first, so a 1,000,000-deep body that does not fit is `too_large`, not
  `too_deep`.
- Duplicate keys are legal JSON and the last one wins (Python's json, like most parsers);
  the duplicate-key cases are built so that the reason shows which value won.
- A UTF-8 byte order mark is refused (`invalid_json`): RFC 8259 forbids sending one, and
  two spellings of one message would derive two message ids.
- A raw NUL byte is not valid JSON (`invalid_json`); an escaped one is `nul_character`.
- `/` is a legal id character: an id with one is valid, and its cases expect the reason a
  well-formed id of an unknown saga gets.

`cases(saga_id, step, command_id)` instantiates the corpus against a running system: the
consumer-level cases need a real saga (one that has finished, so that the replayed and forged
replies are stale instead of completing a step), one of its steps, and the id of one of its
commands. Every call gives fresh message ids, so the corpus can run twice against one system
without its inbox taking the second run for duplicates.

The cases are built in `corpus_decode` (refused by `contracts.decode` alone) and
`corpus_consumer` (refused by a running system); `corpus_base` holds what they share. This
module is the entry point: import from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.hostile.corpus_base import (
    ANYWHERE,
    API,
    COMMANDS,
    CONSUMER_REASONS,
    DUPLICATE,
    EXPECTATIONS,
    INTRUDER,
    PARSE_REASONS,
    QUEUES,
    REPLIES,
    SAGAS,
    TARGETS,
    UNKNOWN_SAGA_TYPE,
    Hostile,
    _command,
    _conflicting,
    _Real,
    _reply,
    _start,
)
from tests.hostile.corpus_consumer import _api, _consumer_level
from tests.hostile.corpus_decode import _decode_level, _parse_level

__all__ = [
    "ANYWHERE",
    "API",
    "COMMANDS",
    "CONSUMER_REASONS",
    "DUPLICATE",
    "EXPECTATIONS",
    "INTRUDER",
    "PARSE_REASONS",
    "QUEUES",
    "REPLIES",
    "SAGAS",
    "TARGETS",
    "UNKNOWN_SAGA_TYPE",
    "Hostile",
    "_command",
    "_reply",
    "_start",
    "cases",
    "decode_cases",
]


def cases(
    saga_id: str,
    step: str,
    command_id: str,
    *,
    saga_type: str = "vim-account.create",
    service: str = "vim",
    conflicting_input: Mapping[str, Any] | None = None,
) -> list[Hostile]:
    """Return the whole corpus, its consumer-level cases aimed at one existing saga.

    Args:
        saga_id: A saga that exists (and has finished, see the module docstring).
        step: One of its steps.
        command_id: The message id of one of its commands (a reply's `command_id`).
        saga_type: Its saga type; it must have an example input in `sagas/examples`.
        service: The adapter whose command queue the `commands` cases go to.
        conflicting_input: A valid input of `saga_type` other than the saga's; by default
            the example input with its `name` changed (the saga was started with the
            example input).
    """
    if conflicting_input is None:
        conflicting_input = _conflicting(saga_type)
    real = _Real(saga_id, step, command_id, saga_type, service, dict(conflicting_input))
    found = _parse_level() + _decode_level() + _consumer_level(real) + _api(real)
    names = [c.name for c in found]
    assert len(names) == len(set(names)), "case names must be unique"
    return found


def decode_cases() -> list[Hostile]:
    """Return the cases `contracts.decode` alone refuses (they need no running system)."""
    return [c for c in cases("s-hostile", "validate", "c-hostile") if c.decode_level]
