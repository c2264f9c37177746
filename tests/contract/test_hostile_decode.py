"""Hostile bodies against `contracts.decode` and `parse_json`: the reason, and nothing else.

Whatever the bytes, decoding raises only `BadMessage` with a known reason, or returns a
message that encodes back to itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import contracts
from contracts import (
    BAD_MESSAGE_REASONS,
    MAX_JSON_DEPTH,
    BadMessage,
    BadMessageReason,
    decode,
    encode,
    jsonsafe,
    parse_json,
)
from contracts.messages import MESSAGE_TYPES
from tests.hostile.corpus import (
    API,
    EXPECTATIONS,
    PARSE_REASONS,
    QUEUES,
    TARGETS,
    Hostile,
    cases,
    decode_cases,
)

CORPUS = cases("s-hostile", "validate", "c-hostile")
BY_KIND = {
    "decode": decode_cases(),
    "parse": [c for c in CORPUS if c.parse_level],
    "consumer": [c for c in CORPUS if not c.decode_level and c.targets & QUEUES],
    "api": [c for c in CORPUS if c.targets == {API}],
}


def _ids(found: list[Hostile]) -> list[str]:
    return [c.name for c in found]


def _reason(body: bytes, **limits: int) -> str | None:
    """The BadMessage reason decode gives, or None when it decodes."""
    try:
        decode(body, **limits)
    except BadMessage as exc:
        return exc.reason
    return None


def _depth(value: Any) -> int:
    stack, deepest = [(value, 0)], 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((inner, level) for inner in _children(item))
    return deepest


def _children(item: dict[str, Any] | list[Any]) -> list[Any]:
    return list(item.values()) if isinstance(item, dict) else item


# -- the corpus -------------------------------------------------------------------------------


def test_the_corpus_is_broad_and_well_formed() -> None:
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names))
    assert len(CORPUS) >= 45
    for case in CORPUS:
        assert case.expect in EXPECTATIONS, case.name
        assert case.targets and case.targets <= TARGETS, case.name
        assert case.repeat >= 1
    # Every decode reason has at least one case, and so has every target.
    assert {c.expect for c in BY_KIND["decode"]} == set(BAD_MESSAGE_REASONS)
    assert set().union(*(c.targets for c in CORPUS)) == TARGETS


def test_the_corpus_is_fresh_on_every_call() -> None:
    # The inbox of a running system would take a second run's messages for duplicates.
    again = {c.name: c.body for c in cases("s-hostile", "validate", "c-hostile")}
    changed = [c.name for c in BY_KIND["consumer"] if again[c.name] != c.body]
    assert "start-unknown-saga-type" in changed
    assert "reply-replayed" in changed


@pytest.mark.parametrize("case", BY_KIND["decode"], ids=_ids(BY_KIND["decode"]))
def test_every_decode_level_case_gives_its_reason(case: Hostile) -> None:
    with pytest.raises(BadMessage) as err:
        decode(case.body)
    assert err.value.reason == case.expect, err.value.detail


@pytest.mark.parametrize("case", BY_KIND["parse"], ids=_ids(BY_KIND["parse"]))
def test_parse_level_cases_are_refused_by_parse_json_alone(case: Hostile) -> None:
    # The API, which reads another body shape, refuses these with parse_json the same way.
    with pytest.raises(BadMessage) as err:
        parse_json(case.body)
    assert err.value.reason == case.expect


@pytest.mark.parametrize("case", BY_KIND["consumer"], ids=_ids(BY_KIND["consumer"]))
def test_consumer_level_cases_decode_so_the_consumer_decides(case: Hostile) -> None:
    message = decode(case.body)
    assert decode(encode(message)) == message


@pytest.mark.parametrize("case", BY_KIND["api"], ids=_ids(BY_KIND["api"]))
def test_api_cases_parse(case: Hostile) -> None:
    assert isinstance(parse_json(case.body), dict)


# -- regressions found by the fault campaign --------------------------------------------------


def test_ten_thousand_deep_is_too_deep_not_a_recursion_error() -> None:
    # The original decode called json.loads first and raised RecursionError here, which the
    # consumer retried until the broker dead-lettered the message without a reason.
    assert _reason(b"[" * 10_000 + b"]" * 10_000) == "too_deep"
    assert _reason(b'{"a":' * 10_000 + b"0" + b"}" * 10_000) == "too_deep"


def test_an_escaped_nul_is_refused_before_postgresql_sees_it() -> None:
    # The original decode accepted this StartSaga; storing its input in jsonb then failed,
    # on every redelivery.
    body = b'{"type":"saga.start","saga_type":"ns.instantiate","input":{"name":"a\\u0000"}}'
    assert _reason(body) == "nul_character"


def test_other_escapes_from_the_original_decode() -> None:
    # Each raised something other than BadMessage before: TypeError, ValueError,
    # OverflowError.
    assert _reason(b'{"type": ["saga.start"]}') == "unknown_type"
    assert _reason(b'{"type": "saga.start", "n": ' + b"1" * 5000 + b"}") == "non_finite_number"
    late = b'{"type":"saga.start","saga_type":"x","sent_at":"9999-12-31T23:00:00-05:00"}'
    assert _reason(late) == "invalid_message"


# -- parse_json -------------------------------------------------------------------------------


def test_parse_json_takes_any_json_value() -> None:
    assert parse_json(b"[1, 2.5, null]") == [1, 2.5, None]
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert parse_json(b"1e-400") == 0.0
    assert parse_json(b'{"a": 1, "a": 2}') == {"a": 2}


@pytest.mark.parametrize("opener", [b"[", b'{"":'])
def test_a_million_levels_is_refused_quickly(opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * 1_000_000 + b"0" + closer * 1_000_000
    started = time.perf_counter()
    with pytest.raises(BadMessage) as err:
        parse_json(body, max_bytes=len(body))
    assert err.value.reason == "too_deep"
    # Generous for a loaded machine; the scan takes a few milliseconds.
    assert time.perf_counter() - started < 2


def test_the_depth_limit_is_inclusive() -> None:
    assert parse_json(b"[[[]]]", max_depth=3) == [[[]]]
    with pytest.raises(BadMessage, match="too_deep"):
        parse_json(b"[[[]]]", max_depth=2)
    assert parse_json(b"0", max_depth=0) == 0
    at_limit = next(c for c in CORPUS if c.name == "at-depth-limit").body
    assert decode(at_limit)
    with pytest.raises(BadMessage, match="too_deep"):
        decode(at_limit, max_depth=MAX_JSON_DEPTH - 1)
    with pytest.raises(BadMessage, match="too_deep"):
        parse_json(b"[]", max_depth=0)


def test_brackets_in_strings_do_not_count() -> None:
    deep_text = json.dumps({"s": "[" * 100, "t": '\\"' + "{" * 100, "u": "]" * 100}).encode()
    assert parse_json(deep_text, max_depth=1)["s"] == "[" * 100
    # An escaped quote does not end a string: the brackets after it are still inside.
    assert parse_json(b'["\\"[[[[[[[[["]', max_depth=1) == ['"[[[[[[[[[']
    # An escaped backslash does: the brackets after it are outside.
    with pytest.raises(BadMessage, match="too_deep"):
        parse_json(b'["\\\\",[[[[[[]]]]]]]', max_depth=2)


def test_strings_cannot_hide_nesting() -> None:
    # Closers inside strings offset openers outside them; only the real ones count.
    body = b"[" * 40 + b'"' + b"]" * 40 + b'",' + b"[" * 40 + b"]" * 80
    with pytest.raises(BadMessage, match="too_deep"):
        parse_json(body, max_depth=64)


def test_depth_beyond_the_interpreter_stack_is_still_too_deep() -> None:
    body = b"[" * 5_000 + b"]" * 5_000
    with pytest.raises(BadMessage) as err:
        parse_json(body, max_depth=10**6)
    assert err.value.reason == "too_deep"


def test_the_reasons_are_documented_and_typed() -> None:
    assert get_args(BadMessageReason) == BAD_MESSAGE_REASONS
    assert BadMessage.REASONS == BAD_MESSAGE_REASONS
    assert set(BAD_MESSAGE_REASONS) > PARSE_REASONS
    assert contracts.MAX_JSON_DEPTH == MAX_JSON_DEPTH == 64
    source = Path(jsonsafe.__file__).read_text(encoding="utf-8")
    for reason in BAD_MESSAGE_REASONS:
        assert f"- {reason}:" in source, f"{reason} is not described in BAD_MESSAGE_REASONS"


# -- properties: nothing but BadMessage, whatever the input -----------------------------------

_ANY_CHAR = st.characters(codec=None, exclude_categories=())
_TEXT = st.text(_ANY_CHAR, max_size=12) | st.sampled_from(
    ["", "\x00", "\ud800", "[", "{", '"', "\\", "saga.start", "1"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.floats()
    | _TEXT
)
_JSONISH = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _templates() -> list[dict[str, Any]]:
    from tests.hostile import corpus

    messages = [
        corpus._start(),
        corpus._reply(),
        corpus._command(),
        {"type": "saga.cancel", "saga_id": "s-1", "reason": "r"},
        {"type": "saga.wake", "saga_id": "s-1", "resource": "x"},
        {
            "type": "saga.event",
            "saga_id": "s-1",
            "saga_type": "t",
            "status": "running",
            "at": "2026-01-01T00:00:00Z",
        },
    ]
    assert {m["type"] for m in messages} == set(MESSAGE_TYPES)
    return messages


_FIELD_VALUES = (
    _JSONISH
    | st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-02-30"])
    | st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, "1", "succeeded", "progress"])
    | st.sampled_from(list(MESSAGE_TYPES))
)


@st.composite
def _mutated_messages(draw: st.DrawFn) -> dict[str, Any]:
    message = dict(draw(st.sampled_from(_templates())))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from([*message, "type", "schema_version", "extra", "message_id"]))
        if draw(st.booleans()) and key in message:
            del message[key]
        else:
            message[key] = draw(_FIELD_VALUES)
    return message


def _dumps(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # Lone surrogates survive only as escapes or as CESU-8 bytes: both must be refused.
    return text.encode("utf-8", "surrogatepass")


def _decodes_or_refuses(body: bytes) -> None:
    try:
        message = decode(body)
    except BadMessage as exc:
        reason: str = exc.reason
    else:
        # Anything accepted encodes as strict JSON again, and decodes to itself.
        assert decode(encode(message)) == message
        return
    assert reason in BAD_MESSAGE_REASONS


_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(st.binary(max_size=300))
@example(b"[" * 3000)
@example(b'{"type": {}}')
@example(b"\xef\xbb\xbf{}")
def test_arbitrary_bytes_give_a_message_or_bad_message(body: bytes) -> None:
    _decodes_or_refuses(body)


@_PROPERTY
@given(_JSONISH, st.booleans())
def test_arbitrary_json_gives_a_message_or_bad_message(value: Any, ascii_only: bool) -> None:
    _decodes_or_refuses(_dumps(value, ascii_only))


@_PROPERTY
@given(_mutated_messages(), st.booleans())
def test_mutated_messages_give_a_message_or_bad_message(
    message: dict[str, Any], ascii_only: bool
) -> None:
    _decodes_or_refuses(_dumps(message, ascii_only))


_NESTING = st.recursive(
    st.none() | st.text(st.sampled_from('[]{}"\\ a'), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.sampled_from('[]{}"\\a'), max_size=4), inner, max_size=3)
    ),
    max_leaves=40,
)


@_PROPERTY
@given(_NESTING, st.integers(0, 12), st.booleans(), st.sampled_from([None, 0, 2]))
def test_the_depth_scan_agrees_with_the_parsed_depth(
    value: Any, limit: int, ascii_only: bool, indent: int | None
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    refused = _reason_of(lambda: parse_json(body, max_depth=limit))
    assert refused == ("too_deep" if _depth(value) > limit else None)


def _reason_of(parse: Callable[[], object]) -> str | None:
    try:
        parse()
    except BadMessage as exc:
        return exc.reason
    return None
