"""The one timestamp format of the API and the CLI: RFC 3339 in UTC, milliseconds, `Z`.

`2026-12-01T20:40:00.123Z`: sortable as text, the same in every column and document.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(when: datetime) -> str:
    """Return `when` (aware; a naive one is taken as UTC) as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    """Return the aware datetime of an RFC 3339 text (`Z` or an offset); ValueError if not."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone")
    return when


def age(seconds: float) -> str:
    """Return a duration for people, two units at most: 42s, 3m05s, 2h10m, 3d04h."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
