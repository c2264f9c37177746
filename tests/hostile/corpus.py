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
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts import (
    BAD_MESSAGE_REASONS,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    CancelSaga,
    Command,
    ErrorInfo,
    Reply,
    SagaEvent,
    SagaStatus,
    StartSaga,
    WakeSaga,
    encode,
    new_id,
    utc_now,
)
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


# -- refused by parse_json: the bytes themselves ----------------------------------------------


def _parse_level() -> list[Hostile]:
    start = encode(StartSaga(saga_type=UNKNOWN_SAGA_TYPE))
    text = start.decode()
    assert b'"input":{}' in start

    def inject(entry: bytes) -> bytes:
        """The StartSaga above with `entry` as the one member of its input."""
        return start.replace(b'"input":{}', b'"input":{' + entry + b"}")

    def h(name: str, body: bytes, expect: str, note: str) -> Hostile:
        return Hostile(name=name, body=body, expect=expect, targets=ANYWHERE, note=note)

    return [
        h("not-json", b"{not json", "invalid_json", "malformed"),
        h("empty-body", b"", "invalid_json", "zero bytes"),
        h("whitespace-only", b" \t\r\n ", "invalid_json", "JSON whitespace and nothing else"),
        h("utf8-bom", codecs.BOM_UTF8 + start, "invalid_json", "a valid message after a BOM"),
        h("non-utf8-bytes", b"\xff\xfe\xfd", "invalid_json", "not text at all"),
        h(
            "latin1-text",
            '{"type":"saga.start","saga_type":"x","input":{"city":"Zürich"}}'.encode("latin-1"),
            "invalid_json",
            "latin-1, not UTF-8",
        ),
        h("utf16-text", text.encode("utf-16"), "invalid_json", "UTF-16 with its BOM"),
        h(
            "encoded-surrogate",
            inject(b'"s":"\xed\xa0\x80"'),
            "invalid_json",
            "U+D800 encoded as UTF-8 bytes (CESU-8): not valid UTF-8",
        ),
        h(
            "raw-nul-byte",
            inject(b'"s":"a\x00b"'),
            "invalid_json",
            "an unescaped control character inside a string",
        ),
        h("trailing-garbage", start + b"x", "invalid_json", "a valid message, then more"),
        h(
            "two-messages",
            start + start,
            "invalid_json",
            "two messages back to back, as amqp-consume writes them",
        ),
        h(
            "python-literal",
            b"{'type': 'saga.start', 'saga_type': 'x'}",
            "invalid_json",
            "single quotes",
        ),
        h("trailing-comma", b'{"type":"saga.start","saga_type":"x",}', "invalid_json", ""),
        h("comment", b'{"type":"saga.start" /* hi */}', "invalid_json", "JSON has no comments"),
        h(
            "over-limit-2mib",
            inject(b'"blob":"' + b"a" * 2 * MAX_MESSAGE_BYTES + b'"'),
            "too_large",
            "2 MiB",
        ),
        h(
            "one-byte-over-limit",
            _pad(start, MAX_MESSAGE_BYTES + 1),
            "too_large",
            "a valid message padded to the limit plus one byte",
        ),
        h(
            "deep-arrays-10k",
            b"[" * 10_000 + b"]" * 10_000,
            "too_deep",
            "raised RecursionError in the original decode",
        ),
        h(
            "deep-objects-10k",
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            "too_deep",
            "objects, not arrays",
        ),
        h(
            "deep-arrays-1m-open",
            b"[" * 1_000_000,
            "too_deep",
            "a million openers, never closed: fits in the limit",
        ),
        h(
            "deep-arrays-1m",
            b"[" * 1_000_000 + b"]" * 1_000_000,
            "too_large",
            "2 MB: the size check runs first",
        ),
        h(
            "deep-objects-1m",
            b'{"":' * 1_000_000 + b"0" + b"}" * 1_000_000,
            "too_large",
            "5 MB: the size check runs first",
        ),
        h(
            "deep-inside-message",
            _dump(_start(input={"n": _nested(MAX_JSON_DEPTH - 1)})),
            "too_deep",
            "a valid StartSaga whose input nests one level past the limit",
        ),
        h(
            "deep-mixed",
            b'{"a":[' * 5_000 + b"1" + b"]}" * 5_000,
            "too_deep",
            "objects and arrays alternating",
        ),
        h(
            "nul-in-value",
            inject(b'"s":"a\\u0000b"'),
            "nul_character",
            "decoded fine in the original decode, then PostgreSQL refused it",
        ),
        h("nul-in-key", inject(b'"a\\u0000b":1'), "nul_character", "an object key"),
        h(
            "nul-in-saga-id",
            _dump(_start(saga_id="s\x00")),
            "nul_character",
            "an id field: refused before its pattern is checked",
        ),
        h("nul-alone", b'"\\u0000"', "nul_character", "a JSON string, not an object"),
        h("lone-high-surrogate", inject(b'"s":"\\ud800"'), "invalid_unicode", ""),
        h("lone-low-surrogate", inject(b'"s":"\\udc00"'), "invalid_unicode", ""),
        h(
            "reversed-surrogates",
            inject(b'"s":"\\ude00\\ud83d"'),
            "invalid_unicode",
            "a low then a high surrogate: two lone halves",
        ),
        h("surrogate-in-key", inject(b'"\\uD800x":1'), "invalid_unicode", "upper-case hex"),
        h("nan", inject(b'"n":NaN'), "non_finite_number", "Python's json extension"),
        h("infinity", inject(b'"n":Infinity'), "non_finite_number", ""),
        h("minus-infinity", inject(b'"n":-Infinity'), "non_finite_number", ""),
        h(
            "float-overflow",
            inject(b'"n":1e999'),
            "non_finite_number",
            "valid JSON that json.loads turns into inf",
        ),
        h("negative-float-overflow", inject(b'"n":-1e999'), "non_finite_number", "-inf"),
        h(
            "integer-too-long",
            inject(b'"n":' + b"9" * 5000),
            "non_finite_number",
            "Python refuses integers over 4300 digits (a plain ValueError before)",
        ),
    ]


# -- refused by decode: valid JSON that is no valid message -----------------------------------


def _decode_level() -> list[Hostile]:
    start = _start()
    reply = _reply()
    command = _command()

    def h(name: str, value: Any, expect: str, note: str, targets: frozenset[str]) -> Hostile:
        body = value if isinstance(value, bytes) else _dump(value)
        return Hostile(name=name, body=body, expect=expect, targets=targets, note=note)

    def bad(name: str, value: Any, note: str, targets: frozenset[str] = QUEUES) -> Hostile:
        return h(name, value, "invalid_message", note, targets)

    sagas, replies, commands = frozenset({SAGAS}), frozenset({REPLIES}), frozenset({COMMANDS})
    long_id = "a" * 129
    return [
        h("json-array", [start], "not_an_object", "a message in an array", QUEUES),
        h("json-string", "saga.start", "not_an_object", "", QUEUES),
        h("json-number", 42, "not_an_object", "", QUEUES),
        h("json-null", None, "not_an_object", "", QUEUES),
        h("json-true", True, "not_an_object", "", QUEUES),
        h("json-false", False, "not_an_object", "", QUEUES),
        h("unknown-type", {**start, "type": "saga.explode"}, "unknown_type", "", QUEUES),
        h("missing-type", _without(start, "type"), "unknown_type", "", QUEUES),
        h("type-number", {**start, "type": 1}, "unknown_type", "", QUEUES),
        h(
            "type-list",
            {**start, "type": ["saga.start"]},
            "unknown_type",
            "unhashable: raised TypeError in the original decode",
            QUEUES,
        ),
        h("type-object", {**start, "type": {"saga.start": 1}}, "unknown_type", "", QUEUES),
        h("type-null", {**start, "type": None}, "unknown_type", "", QUEUES),
        h("type-wrong-case", {**start, "type": "Saga.Start"}, "unknown_type", "", QUEUES),
        h(
            "duplicate-key-type",
            _dump(start)[:-1] + b',"type":"saga.explode"}',
            "unknown_type",
            "two `type` keys: the last one wins",
            QUEUES,
        ),
        *[
            h(
                f"schema-version-{label}",
                {**start, "schema_version": version},
                "unsupported_schema_version",
                "",
                QUEUES,
            )
            for label, version in (
                ("2", 2),
                ("string", "1"),
                ("negative", -1),
                ("huge", 2**70),
                ("null", None),
            )
        ],
        bad("start-missing-saga-type", _without(start, "saga_type"), "", sagas),
        bad("cancel-missing-reason", {"type": "saga.cancel", "saga_id": "s-1"}, "", sagas),
        bad("cancel-missing-saga-id", {"type": "saga.cancel", "reason": "r"}, "", sagas),
        bad("wake-missing-resource", {"type": "saga.wake", "saga_id": "s-1"}, "", sagas),
        bad("reply-missing-outcome", _without(reply, "outcome"), "", replies),
        bad("reply-missing-command-id", _without(reply, "command_id"), "", replies),
        bad("command-missing-payload", _without(command, "payload"), "", commands),
        bad("command-missing-service", _without(command, "service"), "", commands),
        bad(
            "event-missing-at",
            _without(
                _as_dict(
                    SagaEvent(saga_id="s-1", saga_type="t", status=SagaStatus.RUNNING, at=utc_now())
                ),
                "at",
            ),
            "",
            replies,
        ),
        bad("start-extra-field", {**start, "surprise": 1}, "models forbid extra fields", sagas),
        bad("reply-extra-field", {**reply, "surprise": 1}, "", replies),
        bad("command-extra-field", {**command, "surprise": 1}, "", commands),
        bad("saga-id-number", {**start, "saga_id": 123}, "no coercion of a number", sagas),
        bad("input-array", {**start, "input": []}, "", sagas),
        bad("attempt-string", {**reply, "attempt": "one"}, "", replies),
        bad("compensation-not-bool", {**reply, "compensation": "maybe"}, "", replies),
        bad("payload-string", {**command, "payload": "{}"}, "JSON inside a string", commands),
        bad("outcome-unknown", {**reply, "outcome": "exploded"}, "", replies),
        bad("message-id-number", {**start, "message_id": 7}, "", sagas),
        bad("sent-at-not-a-time", {**start, "sent_at": "yesterday"}, "", sagas),
        bad("sent-at-naive", {**start, "sent_at": "2026-01-01T12:00:00"}, "no timezone", sagas),
        bad(
            "sent-at-past-the-end",
            {**start, "sent_at": "9999-12-31T23:00:00-05:00"},
            "past datetime.max in UTC: raised OverflowError in the original decode",
            sagas,
        ),
        bad(
            "sent-at-before-year-1",
            {**start, "sent_at": "0001-01-01T00:00:00+05:00"},
            "before datetime.min in UTC: raised OverflowError in the original decode",
            sagas,
        ),
        bad("saga-id-too-long", {**start, "saga_id": long_id}, "129 characters", sagas),
        bad("message-id-too-long", {**reply, "message_id": long_id}, "", replies),
        bad("command-id-too-long", {**reply, "command_id": long_id}, "", replies),
        bad("saga-id-percent-nul", {**start, "saga_id": "s%00"}, "URL-encoded NUL", sagas),
        bad("saga-id-space", {**start, "saga_id": "my saga"}, "", sagas),
        bad("saga-id-unicode", {**start, "saga_id": "sagä-1"}, "", sagas),
        bad("saga-id-newline", {**start, "saga_id": "s-1\n"}, "a trailing newline", sagas),
        bad("saga-id-control", {**start, "saga_id": "s\x01"}, "U+0001", sagas),
        bad("saga-id-dot-dot", {**start, "saga_id": "../etc"}, "must start alphanumeric", sagas),
        bad("reply-attempt-negative", {**reply, "attempt": -1}, "", replies),
        bad("reply-attempt-zero", {**reply, "attempt": 0}, "", replies),
        bad(
            "reply-attempt-huge",
            {**reply, "attempt": 2**70},
            "over PostgreSQL's integer: the model bounds attempts now",
            replies,
        ),
        bad("command-attempt-zero", {**command, "attempt": 0}, "", commands),
        bad("command-attempt-huge", {**command, "attempt": 2**70}, "", commands),
        bad(
            "reply-succeeded-without-result",
            {**reply, "outcome": "succeeded", "result": None},
            "",
            replies,
        ),
        bad(
            "reply-result-and-error",
            {**reply, "outcome": "succeeded", "result": {}, "error": {"code": "x", "message": ""}},
            "",
            replies,
        ),
        bad("reply-failed-without-error", {**reply, "outcome": "failed"}, "", replies),
    ]


# -- decoded, then refused by the consumer ----------------------------------------------------


def _consumer_level(real: _Real) -> list[Hostile]:
    sagas, replies, commands = frozenset({SAGAS}), frozenset({REPLIES}), frozenset({COMMANDS})

    def h(
        name: str,
        value: Any,
        expect: str,
        targets: frozenset[str],
        note: str,
        **extra: Any,
    ) -> Hostile:
        body = value if isinstance(value, bytes) else encode(value)
        return Hostile(name=name, body=body, expect=expect, targets=targets, note=note, **extra)

    def reply(saga_id: str = real.saga_id, step: str = real.step, **fields: Any) -> Reply:
        fields.setdefault("outcome", "succeeded")
        fields.setdefault("result", {})
        return Reply(command_id=real.command_id, saga_id=saga_id, step=step, attempt=1, **fields)

    def command(service: str = real.service, action: str | None = None) -> Command:
        return Command(
            saga_id=real.saga_id,
            saga_type=real.saga_type,
            step=real.step,
            attempt=1,
            idempotency_key=f"{real.saga_id}/{real.step}",
            service=service,
            action=action or OSM_CATALOGUE.for_service(service)[0].ACTION,
            payload={},
        )

    def unknown_type(**changes: Any) -> bytes:
        return _dump(_start(**changes))

    other_service = "lcm" if real.service != "lcm" else "vim"
    replayed = reply()
    return [
        h(
            "at-limit-start",
            _pad(unknown_type(), MAX_MESSAGE_BYTES),
            "unknown_saga_type",
            sagas,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-limit-reply",
            _pad(encode(reply(saga_id=_fresh())), MAX_MESSAGE_BYTES),
            "unknown_saga",
            replies,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-limit-command",
            _pad(encode(command(action=f"{real.service}.launch-missiles")), MAX_MESSAGE_BYTES),
            "unknown_action",
            commands,
            "exactly MAX_MESSAGE_BYTES: accepted by decode",
        ),
        h(
            "at-depth-limit",
            unknown_type(input={"n": _nested(MAX_JSON_DEPTH - 2)}),
            "unknown_saga_type",
            sagas,
            "nests exactly MAX_JSON_DEPTH levels: accepted",
        ),
        h(
            "brackets-in-strings",
            unknown_type(input={"s": "[" * 10_000, "t": "{" * 10_000}),
            "unknown_saga_type",
            sagas,
            "brackets inside strings do not count towards the depth",
        ),
        h(
            "escaped-quotes-and-brackets",
            unknown_type(input={"s": '\\"' + "[" * 1000 + '\\\\"' + '"[' * 1000}),
            "unknown_saga_type",
            sagas,
            "escaped quotes and backslashes do not end a string early",
        ),
        h(
            "escaped-backslash-u0000",
            unknown_type(input={"s": "\\u0000", "t": "\\ud800"}),
            "unknown_saga_type",
            sagas,
            "the text \\u0000 (an escaped backslash, then u0000) holds no NUL",
        ),
        h(
            "surrogate-pair",
            unknown_type(input={"s": "\U0001f600"}),
            "unknown_saga_type",
            sagas,
            "json.dumps escapes it as \\ud83d\\ude00: a valid pair is one character",
        ),
        h(
            "big-integer",
            unknown_type(input={"n": int("9" * 400)}),
            "unknown_saga_type",
            sagas,
            "400 digits: a Python int and a jsonb numeric, so accepted",
        ),
        h(
            "duplicate-key-saga-type",
            unknown_type(saga_type="vim-account.create")[:-1]
            + b',"saga_type":"'
            + UNKNOWN_SAGA_TYPE.encode()
            + b'"}',
            "unknown_saga_type",
            sagas,
            "a known saga type (whose empty input is invalid), then an unknown one: the last wins",
        ),
        h(
            "duplicate-key-invalid-then-valid",
            _dump(_start(saga_type="Not A Name"))[:-1]
            + b',"saga_type":"'
            + UNKNOWN_SAGA_TYPE.encode()
            + b'"}',
            "unknown_saga_type",
            sagas,
            "an invalid saga_type, then a valid one: the last wins, so it decodes",
        ),
        h(
            "saga-id-with-slash",
            CancelSaga(saga_id=f"{_fresh()}/../x", reason="hostile"),
            "unknown_saga",
            sagas,
            "`/` is legal in ids; nothing may treat one as a path",
        ),
        h(
            "garbage-traceparent",
            unknown_type(),
            "unknown_saga_type",
            sagas,
            "a malformed trace context is ignored, not fatal",
            headers={"traceparent": "00-zz-\x00-01" + "f" * 5000},
        ),
        h(
            "zero-traceparent",
            unknown_type(),
            "unknown_saga_type",
            sagas,
            "the all-zero trace context is invalid by W3C",
            headers={"traceparent": f"00-{'0' * 32}-{'0' * 16}-01"},
        ),
        h(
            "start-unknown-saga-type",
            StartSaga(saga_type=UNKNOWN_SAGA_TYPE, saga_id=_fresh()),
            "unknown_saga_type",
            sagas,
            "",
        ),
        h(
            "start-invalid-input",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh(), input={"surprise": 1}),
            "invalid_input",
            sagas,
            "",
        ),
        h(
            "start-conflicting-input",
            StartSaga(saga_type=real.saga_type, saga_id=real.saga_id, input=real.conflicting_input),
            "conflict",
            sagas,
            "the saga id exists with another input: not a duplicate",
        ),
        h(
            "cancel-unknown-saga",
            CancelSaga(saga_id=_fresh(), reason="hostile"),
            "unknown_saga",
            sagas,
            "",
        ),
        h("reply-on-sagas-queue", reply(), "unexpected_type", sagas, ""),
        h("command-on-sagas-queue", command(), "unexpected_type", sagas, ""),
        h(
            "start-on-replies-queue",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh()),
            "unexpected_type",
            replies,
            "",
        ),
        h(
            "event-on-replies-queue",
            SagaEvent(
                saga_id=real.saga_id,
                saga_type=real.saga_type,
                status=SagaStatus.COMPLETED,
                at=utc_now(),
            ),
            "unexpected_type",
            replies,
            "",
        ),
        h(
            "wake-on-replies-queue",
            WakeSaga(saga_id=real.saga_id, resource="x"),
            "unexpected_type",
            replies,
            "",
        ),
        h("reply-unknown-saga", reply(saga_id=_fresh()), "unknown_saga", replies, ""),
        h("reply-unknown-step", reply(step="no-such-step"), "unknown_step", replies, ""),
        h(
            "reply-replayed",
            replayed,
            DUPLICATE,
            replies,
            "the same message id twice: the second copy is acked as a duplicate",
            repeat=2,
        ),
        h(
            "reply-forged",
            reply(outcome="failed", result=None, error=ErrorInfo(code="x", message="forged")),
            "forged",
            replies,
            "a reply not published by an adapter's broker user",
            user_id=INTRUDER,
        ),
        h(
            "command-wrong-service",
            command(service=other_service),
            "wrong_service",
            commands,
            f"a {other_service} command on the {real.service} queue",
        ),
        h(
            "command-unknown-action",
            command(action=f"{real.service}.launch-missiles"),
            "unknown_action",
            commands,
            "",
        ),
        h("reply-on-commands-queue", reply(), "wrong_message", commands, ""),
        h(
            "start-on-commands-queue",
            StartSaga(saga_type=real.saga_type, saga_id=_fresh()),
            "wrong_message",
            commands,
            "",
        ),
        h(
            "command-forged",
            command(),
            "forged",
            commands,
            "a command not published by the coordinator's broker user",
            user_id=INTRUDER,
        ),
    ]


# -- POST /sagas: a StartBody, not a message --------------------------------------------------


def _api(real: _Real) -> list[Hostile]:
    api = frozenset({API})

    def h(name: str, value: Any, expect: str, note: str) -> Hostile:
        body = value if isinstance(value, bytes) else _dump(value)
        return Hostile(name=name, body=body, expect=expect, targets=api, note=note)

    unknown = {"saga_type": UNKNOWN_SAGA_TYPE, "saga_id": _fresh(), "input": {}}
    return [
        h("api-unknown-saga-type", unknown, "unknown_saga_type", ""),
        h(
            "api-invalid-input",
            {"saga_type": real.saga_type, "saga_id": _fresh(), "input": {"surprise": 1}},
            "invalid_input",
            "",
        ),
        h(
            "api-conflicting-input",
            {"saga_type": real.saga_type, "saga_id": real.saga_id, "input": real.conflicting_input},
            "conflict",
            "HTTP 409",
        ),
        h("api-missing-saga-type", {"input": {}}, "invalid_message", ""),
        h("api-extra-field", {**unknown, "type": "saga.start"}, "invalid_message", "a message"),
        h(
            "api-at-limit",
            _pad(_dump(unknown), MAX_MESSAGE_BYTES),
            "unknown_saga_type",
            "exactly the API's default body limit, which is inclusive too",
        ),
    ]
