"""Exchange routing as RabbitMQ does it, for the in-process broker.

A direct exchange routes on equal keys. A topic exchange splits keys and
binding patterns into dot-separated words: `*` matches exactly one word and
`#` matches zero or more, so `saga.#.failed` matches `saga.failed` and
`saga.vim-account.create.failed`.
"""

from __future__ import annotations

from functools import lru_cache

from contracts.topology import ExchangeType


def routes(exchange_type: ExchangeType, binding_key: str, routing_key: str) -> bool:
    """Return whether a binding with `binding_key` takes a message with `routing_key`."""
    if exchange_type == "topic":
        return topic_matches(binding_key, routing_key)
    return binding_key == routing_key


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """Return whether a topic binding `pattern` matches `routing_key`."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # `#` takes 0..n words: try every split; keys are short, so this stays cheap.
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
