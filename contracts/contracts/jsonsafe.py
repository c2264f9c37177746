r"""Parsing untrusted JSON bodies, and the `BadMessage` error every refused body raises.

Python's `json` accepts more than the rest of the system can take: deep nesting makes its
recursive parser raise `RecursionError`; `NaN`, `Infinity` and numbers that overflow to
infinity decode to floats that cannot be encoded back as JSON; `\u0000` and lone UTF-16
surrogates decode to strings that PostgreSQL's `jsonb` and `text` refuse. `parse_json`
refuses all of these up front with a stable reason, so a consumer dead-letters the body with
that reason instead of failing later, again on every redelivery.
"""

from __future__ import annotations

import codecs
import json
import math
import operator
import re
from itertools import accumulate, count
from typing import Any, ClassVar, Literal, NoReturn, get_args

MAX_MESSAGE_BYTES = 1_048_576
"""Largest message body a consumer accepts (1 MiB, inclusive); larger ones are dead-lettered."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; `{}` is depth 1, `{"a": []}` depth 2."""

BadMessageReason = Literal[
    "too_large",
    "invalid_json",
    "too_deep",
    "nul_character",
    "invalid_unicode",
    "non_finite_number",
    "not_an_object",
    "unknown_type",
    "unsupported_schema_version",
    "invalid_message",
]
"""Why a body was refused; consumers put it in the dead-letter reason header."""

BAD_MESSAGE_REASONS: tuple[BadMessageReason, ...] = get_args(BadMessageReason)
r"""Every reason `BadMessage` can carry, in the order the checks run.

The first six come from `parse_json`, the rest from `contracts.decode`:

- too_large: the body is over the byte limit (a body exactly at the limit is accepted).
- invalid_json: not JSON: malformed, empty or blank, not UTF-8 (latin-1, UTF-16, encoded
  surrogates), or starting with a byte order mark.
- too_deep: arrays and objects nest deeper than the depth limit.
- nul_character: a string or key holds U+0000 (`\u0000`).
- invalid_unicode: a string or key holds a lone UTF-16 surrogate (`"\ud800"`).
- non_finite_number: `NaN`, `Infinity`, `-Infinity`, a number that overflows a double
  (`1e999`), or an integer too long to convert (over Python's 4300-digit limit).
- not_an_object: valid JSON, but not an object.
- unknown_type: no `type`, or one that names no message.
- unsupported_schema_version: a `schema_version` this release does not read.
- invalid_message: the object does not validate against its message's model.
"""


class BadMessage(ValueError):
    """A message body that cannot be accepted; `reason` is a stable code, `detail` says why."""

    REASONS: ClassVar[tuple[BadMessageReason, ...]] = BAD_MESSAGE_REASONS

    def __init__(self, reason: BadMessageReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: BadMessageReason = reason
        self.detail = detail


def parse_json(
    body: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse an untrusted JSON body, refusing what the rest of the system cannot hold.

    Args:
        body: The raw bytes, which must be UTF-8 without a byte order mark.
        max_bytes: Largest body accepted, inclusive.
        max_depth: Deepest nesting of arrays and objects accepted.

    Returns:
        The parsed value: any JSON value, not only an object.

    Raises:
        BadMessage: With reason too_large, invalid_json, too_deep, nul_character,
            invalid_unicode or non_finite_number; never any other exception.
    """
    if len(body) > max_bytes:
        raise BadMessage("too_large", f"{len(body)} bytes, the limit is {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage("invalid_json", f"not UTF-8: {exc}") from exc
    if body.startswith(codecs.BOM_UTF8):
        raise BadMessage("invalid_json", "starts with a UTF-8 byte order mark")
    escapes = b"\\" in body
    if _nests_deeper(body, max_depth, escapes=escapes):
        raise BadMessage("too_deep", f"arrays and objects nest deeper than {max_depth} levels")
    try:
        value = _DECODER.decode(text)
    except BadMessage:
        # From the number hooks; a ValueError too, which the handler below would relabel.
        raise
    except json.JSONDecodeError as exc:
        raise BadMessage("invalid_json", str(exc)) from exc
    except ValueError as exc:
        # The only other ValueError json raises: an integer over Python's digit limit.
        raise BadMessage("non_finite_number", str(exc)) from exc
    except RecursionError as exc:
        # Reached only when the caller allows more depth than the interpreter's stack has.
        raise BadMessage("too_deep", "nesting exhausted the parser's recursion limit") from exc
    # U+0000 and surrogates can only arrive escaped (raw ones are not valid JSON or not
    # UTF-8), so a body without such an escape needs no walk over its strings.
    if escapes and _SUSPECT_ESCAPE.search(body):
        _check_strings(value)
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise BadMessage("non_finite_number", f"{name} is not a finite number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise BadMessage("non_finite_number", f"{literal[:40]} overflows to infinity")
    return value


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)

_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Brackets become ( and ), quotes stay, every other byte is dropped.
_MARKS = bytes.maketrans(b"[{]}", b"(())")
_NOT_MARKS = bytes(sorted(set(range(256)) - set(b'[]{}"')))
# An opener counts 2 and a closer 0, so that after k marks the running sum minus k is the
# depth: the whole prefix scan then runs inside C (accumulate, map) with no Python loop.
_STEPS = bytes.maketrans(b"()", b"\x02\x00")
# Real messages nest a few levels deep: this many rounds of removing innermost pairs settle
# them without the prefix scan, which costs more per byte.
_QUICK_ROUNDS = 8


def _nests_deeper(body: bytes, limit: int, *, escapes: bool) -> bool:
    # Counts the brackets the parser would see, outside strings, without parsing: json's
    # parser recurses once per level, so the body must not reach it if it nests too deep.
    # Where the body is not valid JSON the count may differ from the parser's past the first
    # error, but the parser never gets further than that error.
    if escapes:
        # Escaped backslashes first, so that `\\"` keeps its closing quote; what remains of
        # the escapes cannot contain a quote or a bracket.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_MARKS, _NOT_MARKS)
    if marks.count(b"(") <= limit:
        return False
    quotes = marks.count(b'"')
    if quotes:
        # Two adjacent quotes enclose no bracket, and dropping them leaves every other mark
        # on the same side of its string boundary. When all quotes pair up that way (no
        # string holds a bracket: nearly always), counting the pairs is cheaper than
        # removing them.
        if marks.count(b'""') * 2 == quotes:
            marks = marks.translate(None, b'"')
        else:
            marks = b"".join(marks.replace(b'""', b"").split(b'"')[::2])
        if marks.count(b"(") <= limit:
            return False
    # Each round removes the innermost pairs. What lies between two openers that end up
    # side by side was balanced, so the second nests in the first: a run of limit + 1
    # openers, before or after any round, proves the body too deep.
    run = b"(" * (limit + 1)
    reduced = marks
    for _ in range(min(limit, _QUICK_ROUNDS)):
        if run in reduced:
            return True
        shorter = reduced.replace(b"()", b"")
        if not shorter:
            return False
        if len(shorter) == len(reduced):
            break
        reduced = shorter
    depth: int = max(map(operator.sub, accumulate(marks.translate(_STEPS)), count(1)))
    return depth > limit


def _check_strings(value: Any) -> None:
    # A stack, not recursion: the depth is bounded, but a walk needs no such assumption.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item, "string")
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key, "key")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise BadMessage("nul_character", f"a {where} holds U+0000, which PostgreSQL refuses")
    if _SURROGATE.search(text):
        raise BadMessage("invalid_unicode", f"a {where} holds a lone UTF-16 surrogate")
