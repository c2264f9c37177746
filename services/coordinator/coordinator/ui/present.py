"""How values look on the dashboard: secrets redacted, times and durations, JSON, statuses."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from jinja2 import Environment

from contracts import TERMINAL_STATUSES
from convection.sealing import is_sealed
from convection.timefmt import rfc3339
from coordinator.ui.auth import CSRF_FIELD, SESSION

REDACTED = "[redacted]"
"""What a secret shows as."""
SEALED = "[sealed secret]"
"""What a sealed value shows as: readable only by the services that own it."""
# Names that say a value is secret, in inputs and results alike (a password the caller sent
# in the clear, a token a participant returned).
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|credential_key|private|api_?key", re.I)
TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
"""Statuses that end a saga: its page stops polling."""
ENDED_BADLY = frozenset({"failed", "compensated", "compensation_failed", "cancelled", "abandoned"})
"""Ended statuses that are not a success."""


def redact(value: Any) -> Any:
    """Return `value` with every secret-looking field and every sealed value replaced."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_NAME.search(str(k)) and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if is_sealed(value):
        return SEALED
    return value


def pretty(value: Any) -> str:
    """Return `value`, redacted, as indented JSON."""
    return json.dumps(redact(value), indent=2, sort_keys=True, default=str)


def when(value: datetime | str | None) -> str:
    """Return a time as RFC 3339 UTC, or a dash."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return rfc3339(value)


def seconds(value: float | None) -> str:
    """Return a duration in seconds, readable, or a dash."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def percent(value: float | None) -> str:
    """Return a rate as a percentage."""
    return "-" if value is None else f"{value * 100:.0f}%"


def status_class(status: str | None) -> str:
    """Return the CSS class of a status badge."""
    if status == "completed" or status == "succeeded" or status == "done":
        return "st-ok"
    if status in ENDED_BADLY or status == "failed":
        return "st-bad"
    if status in ("running", "compensating", "pending"):
        return "st-live"
    return "st-other"


def install(env: Environment) -> None:
    """Register the dashboard's filters on a Jinja environment."""
    env.filters.update(
        pretty=pretty,
        when=when,
        seconds=seconds,
        percent=percent,
        status_class=status_class,
    )


def render(
    name: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a template with what every page shows: the session, the CSRF field's name."""
    shared = {"session": request.get(SESSION), "csrf_field": CSRF_FIELD, "path": request.path}
    return aiohttp_jinja2.render_template(name, request, {**shared, **context}, status=status)
