"""The query of `GET /sagas`: its parameters, their checks, and the opaque page cursor.

Parameters (each at most once; an empty value counts as not given):

    status          comma list of saga statuses (any of them)
    saga_type       one saga type
    stuck           true or false
    resource        a resource the saga locks, e.g. ns:ns-web-1
    input.<path>    a field of the input equals the value, compared as text; dotted paths
                    reach into nested objects (input.credentials.project=osm)
    error_code      the code of the saga's error
    started_after   created at or after (RFC 3339 with a timezone); alias `since`
    started_before  created before (RFC 3339 with a timezone); alias `until`
    limit           1 to 500 (default 50)
    cursor          the `next_cursor` of the previous page

Anything else, or a bad value, is a `BadQuery` naming the parameter (a 400 problem).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from contracts import SagaStatus
from coordinator.store import SagaFilter
from coordinator.store.queries import Position

MAX_LIMIT = 500
"""The largest page."""
DEFAULT_LIMIT = 50
"""The page size when `limit` is not given."""
ALIASES = {"since": "started_after", "until": "started_before"}
"""Older names still accepted."""
PARAMETERS = (
    "status",
    "saga_type",
    "stuck",
    "resource",
    "error_code",
    "started_after",
    "started_before",
    "limit",
    "cursor",
)
"""Every parameter but `input.<path>` and the aliases."""
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_NOT_A_CURSOR = "not a cursor from this API"


class BadQuery(ValueError):
    """A query parameter is unknown or has a bad value; the message names it first."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def statuses() -> tuple[str, ...]:
    """Return every saga status, in the order the enum declares them."""
    return tuple(s.value for s in SagaStatus)


def parse(pairs: Iterable[tuple[str, str]]) -> SagaFilter:
    """Return the filter a query's (name, value) pairs ask for, or raise BadQuery."""
    given: dict[str, str] = {}
    seen: dict[str, str] = {}
    fields: list[tuple[tuple[str | int, ...], str]] = []
    for raw_name, value in pairs:
        name = ALIASES.get(raw_name, raw_name)
        if name in given:
            raise BadQuery(raw_name, "given twice (or with its alias)")
        given[name] = raw_name
        if name.startswith("input."):
            fields.append((_path(name), _text(name, value, 1000)))
            continue
        if name not in PARAMETERS:
            known = ", ".join((*PARAMETERS, "input.<field>", *ALIASES))
            raise BadQuery(name, f"unknown query parameter; known: {known}")
        if value != "":
            seen[name] = value
    get = seen.get
    return SagaFilter(
        statuses=_statuses(get("status", "")),
        saga_type=_text("saga_type", get("saga_type", ""), 64) or None,
        started_after=_when(given.get("started_after", ""), get("started_after")),
        started_before=_when(given.get("started_before", ""), get("started_before")),
        stuck=_flag("stuck", get("stuck")),
        resource=_text("resource", get("resource", ""), 300) or None,
        input_fields=tuple(fields),
        error_code=_text("error_code", get("error_code", ""), 200) or None,
        after=decode_cursor(get("cursor")),
        limit=_limit(get("limit")),
    )


def _text(name: str, value: str, longest: int) -> str:
    if len(value) > longest:
        raise BadQuery(name, f"longer than {longest} characters")
    if "\x00" in value:
        raise BadQuery(name, "holds a NUL character")
    return value


def _path(name: str) -> tuple[str | int, ...]:
    parts = name.removeprefix("input.").split(".")
    if not all(_SEGMENT.match(p) for p in parts):
        raise BadQuery(name, "a field path is names of letters, digits, _ and -, joined by dots")
    # A numeric segment indexes a list (input.vnfs.0.member).
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _statuses(value: str) -> tuple[str, ...]:
    wanted = tuple(s.strip() for s in value.split(",") if s.strip())
    known = statuses()
    for status in wanted:
        if status not in known:
            raise BadQuery("status", f"unknown status {status!r}; known: {', '.join(known)}")
    return wanted


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadQuery(name, f"{value!r} is not true or false")


def _when(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(name, f"{value!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise BadQuery(name, "needs a timezone, e.g. 2026-12-01T20:40:00Z")
    return when


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadQuery("limit", f"{value!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def encode_cursor(position: Position) -> str:
    """Return the opaque cursor of a page that ends at `position`."""
    at, saga_id = position
    raw = json.dumps([at.isoformat(), saga_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """Return the position a cursor stands for, or raise BadQuery if it is not one of ours."""
    if cursor is None:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data: Any = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadQuery("cursor", _NOT_A_CURSOR) from None
    if not isinstance(data, list) or len(data) != 2 or not all(isinstance(v, str) for v in data):
        raise BadQuery("cursor", _NOT_A_CURSOR)
    at_text, saga_id = data
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        raise BadQuery("cursor", _NOT_A_CURSOR) from None
    if at.tzinfo is None or not 0 < len(saga_id) <= 128:
        raise BadQuery("cursor", _NOT_A_CURSOR)
    return at, saga_id
