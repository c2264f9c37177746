"""Hostile cases `contracts.decode` alone refuses: bytes `contracts.parse_json` refuses, and
valid JSON that is no valid message (see `tests.hostile.corpus`)."""

from __future__ import annotations

import codecs
from typing import Any

from contracts import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    SagaEvent,
    SagaStatus,
    StartSaga,
    encode,
    utc_now,
)
from tests.hostile.corpus_base import (
    ANYWHERE,
    COMMANDS,
    QUEUES,
    REPLIES,
    SAGAS,
    UNKNOWN_SAGA_TYPE,
    Hostile,
    _as_dict,
    _command,
    _dump,
    _nested,
    _pad,
    _reply,
    _start,
    _without,
)

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
