"""The dead-letter routes of the HTTP API: list, show, replay, purge.

Each reads its request, calls the coordinator's `dead_letters` face
(`coordinator.dead_letter_ops`) and answers JSON or a problem. A reader may list and show;
replay and purge need an operator (the auth middleware refuses other methods to readers).
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from coordinator.api_http import (
    ACTOR,
    COORDINATOR,
    Handler,
    bad_query,
    json_response,
    problem,
    read_body,
)
from coordinator.dead_letter_ops import BadCursor, decode_cursor
from coordinator.store import DeadLetterFilter, PurgeSelector

LIST_PARAMETERS = ("queue", "reason", "saga_id", "replayed", "limit", "cursor")
"""The query parameters `GET /dead-letters` takes; any other is refused."""
MAX_LIMIT = 500
"""The largest page."""


class ReplayBody(BaseModel):
    """Body of POST /dead-letters/{id}/replay."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)
    again: StrictBool = False


class PurgeBody(BaseModel):
    """Body of POST /dead-letters/purge: the selectors, every given one must match."""

    model_config = ConfigDict(extra="forbid")
    ids: Annotated[list[StrictInt], Field(max_length=10_000)] | None = None
    queue: str | None = Field(default=None, min_length=1, max_length=300)
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    replayed: StrictBool | None = None


def _boolean(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.lower())


async def list_dead_letters(request: web.Request) -> web.StreamResponse:
    """GET /dead-letters: filters queue, reason, saga_id, replayed; limit and cursor."""
    q = request.query
    unknown = sorted(set(q) - set(LIST_PARAMETERS))
    if unknown:
        return problem(
            400,
            "Bad Request",
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"known: {', '.join(LIST_PARAMETERS)}",
            errors=[{"loc": ["query", n], "msg": "unknown", "type": "unknown"} for n in unknown],
        )
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        return bad_query("limit", "not a whole number")
    if not 1 <= limit <= MAX_LIMIT:
        return bad_query("limit", f"must be from 1 to {MAX_LIMIT}")
    replayed = None
    if q.get("replayed"):
        replayed = _boolean(q["replayed"])
        if replayed is None:
            return bad_query("replayed", "must be true or false")
    after = None
    if q.get("cursor"):
        try:
            after = decode_cursor(q["cursor"])
        except BadCursor as exc:
            return bad_query("cursor", str(exc))
    f = DeadLetterFilter(
        queue=q.get("queue") or None,
        reason=q.get("reason") or None,
        saga_id=q.get("saga_id") or None,
        replayed=replayed,
        limit=limit,
        after=after,
    )
    page = await request.app[COORDINATOR].dead_letters.list_dead_letters(f)
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


def _dead_letter_id(request: web.Request) -> int:
    text = request.match_info["dead_letter_id"]
    # ASCII digits only, and within PostgreSQL's bigint: anything else names no dead letter.
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise web.HTTPNotFound(text=f"no dead letter {text[:80]!r}")
    return int(text)


async def get_dead_letter(request: web.Request) -> web.StreamResponse:
    """GET /dead-letters/{id}: one dead letter with its headers and body."""
    dead_letter_id = _dead_letter_id(request)
    found = await request.app[COORDINATOR].dead_letters.get_dead_letter(dead_letter_id)
    if found is None:
        return problem(404, "Not Found", f"no dead letter {dead_letter_id}")
    return json_response(found)


async def replay_dead_letter(request: web.Request) -> web.StreamResponse:
    """POST /dead-letters/{id}/replay: publish it again to the queue it died in."""
    dead_letter_id = _dead_letter_id(request)
    body: ReplayBody = await read_body(request, ReplayBody)
    done = await request.app[COORDINATOR].dead_letters.replay(
        dead_letter_id, reason=body.reason, again=body.again, requested_by=request[ACTOR]
    )
    if done.kind == "not_found":
        return problem(404, "Not Found", f"no dead letter {dead_letter_id}")
    if done.kind in ("already_replayed", "unroutable"):
        return problem(409, "Conflict", done.note)
    if done.kind == "unavailable":
        return problem(503, "Service Unavailable", done.note)
    return json_response(
        {"id": dead_letter_id, "replay_message_id": done.replay_message_id}, status=202
    )


async def purge_dead_letters(request: web.Request) -> web.StreamResponse:
    """POST /dead-letters/purge: delete the dead letters the selectors match."""
    body: PurgeBody = await read_body(request, PurgeBody)
    selector = PurgeSelector(
        ids=tuple(body.ids or ()), queue=body.queue, reason=body.reason, replayed=body.replayed
    )
    if selector.empty:
        return problem(
            400,
            "Bad Request",
            "name what to purge: ids, queue, reason or replayed (a purge of everything is refused)",
        )
    purged = await request.app[COORDINATOR].dead_letters.purge(selector)
    return json_response({"purged": purged})


DEAD_LETTER_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/dead-letters", list_dead_letters),
    ("POST", "/dead-letters/purge", purge_dead_letters),
    ("GET", "/dead-letters/{dead_letter_id}", get_dead_letter),
    ("POST", "/dead-letters/{dead_letter_id}/replay", replay_dead_letter),
]
"""The dead-letter routes: (method, path, handler)."""
