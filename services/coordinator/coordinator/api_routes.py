"""The routes of the HTTP API: start, list, inspect, cancel, retry, skip, abandon, stats, health.

Each route reads its request, calls the coordinator's `Operations` (or, for dead letters in
`coordinator.api_dead_letters`, its `dead_letters`), and answers JSON or a problem; none
reaches into the processor, the store or the database engine. A saga id may hold `/`: clients
send it percent-encoded (`%2F`), which aiohttp matches as one segment and decodes into
`match_info`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Identifier, Name
from coordinator.api_dead_letters import DEAD_LETTER_ROUTES
from coordinator.api_http import (
    ACTOR,
    COORDINATOR,
    OPERATOR,
    ApiProblem,
    Handler,
    bad_query,
    errors_problem,
    json_response,
    problem,
    read_body,
)
from coordinator.catalogue import describe
from coordinator.openapi import document
from coordinator.operations import Started
from coordinator.saga_search import BadQuery, encode_cursor, parse
from coordinator.views import saga_detail

_SAGA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
"""What `contracts.base.Identifier` allows; anything else names no saga."""


class StartBody(BaseModel):
    """Body of POST /sagas."""

    model_config = ConfigDict(extra="forbid")
    saga_type: Name
    input: dict[str, Any] = Field(default_factory=dict)
    saga_id: Identifier | None = None


class ReasonBody(BaseModel):
    """Body of the operator verbs: why, recorded in the history."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


async def start_saga(request: web.Request) -> web.StreamResponse:
    """POST /sagas: start a saga; honours Idempotency-Key."""
    coord = request.app[COORDINATOR]
    body: StartBody = await read_body(request, StartBody)
    key = request.headers.get("Idempotency-Key")
    started = await coord.operations.start(
        body.saga_type,
        body.input,
        saga_id=body.saga_id,
        idempotency_key=key,
        headers=request.headers,
        requested_by=request[ACTOR],
    )
    return _answer_start(started, body, bool(key))


def _answer_start(started: Started, body: StartBody, keyed: bool) -> web.Response:
    if started.kind == "rejected" and started.reason == "unknown_saga_type":
        error = {"loc": ["saga_type"], "msg": "unknown saga type", "type": "unknown_saga_type"}
        return errors_problem([error], started.note, code="unknown_saga_type")
    if started.kind == "rejected" and started.reason == "invalid_input":
        detail = f"the input of {body.saga_type} is invalid"
        return errors_problem(list(started.errors), detail, code="invalid_input")
    if started.kind == "rejected":
        return problem(422, "Unprocessable Content", started.note, code=started.reason)
    if started.kind == "conflict":
        if keyed:
            return problem(422, "Unprocessable Content", started.note, code="conflict")
        return problem(409, "Conflict", started.note, code="conflict")
    return json_response(
        {"saga_id": started.saga_id, "status": str(started.status) if started.status else None},
        status=202,
        headers={"Location": saga_path(started.saga_id)},
    )


MAX_STATS_WINDOW = 10 * 366 * 24 * 3600
"""The widest `GET /stats` window, in seconds: beyond it a date overflows, and no one asks."""


def saga_path(saga_id: str) -> str:
    """Return the API path of a saga, its id percent-encoded (a `/` in it becomes `%2F`)."""
    return "/sagas/" + quote(saga_id, safe="")


def _saga_id(request: web.Request) -> str:
    """Return the saga id of the path, or raise ApiProblem: 400 for NUL, 404 for no such id."""
    saga_id = request.match_info["saga_id"]
    if "\x00" in saga_id:
        raise ApiProblem(
            problem(400, "Bad Request", "a saga id holds no NUL character", code="nul_character")
        )
    if not _SAGA_ID.match(saga_id):
        shown = saga_id if len(saga_id) <= 140 else saga_id[:128] + "..."
        raise ApiProblem(
            problem(404, "Not Found", f"no saga {shown}: not a saga id (1-128 of A-Za-z0-9._:/-)")
        )
    return saga_id


async def list_sagas(request: web.Request) -> web.StreamResponse:
    """GET /sagas: filtered (see `coordinator.saga_search`), newest first, by keyset pages."""
    coord = request.app[COORDINATOR]
    try:
        f = parse(request.query.items())
    except BadQuery as exc:
        return bad_query(exc.parameter, exc.message)
    page = await coord.operations.list_sagas(f)
    next_cursor = encode_cursor(page.next_after) if page.next_after else None
    return json_response({"items": page.items, "next_cursor": next_cursor})


async def get_saga(request: web.Request) -> web.StreamResponse:
    """GET /sagas/{id}: the saga with its steps, history, trace id and lock position."""
    coord = request.app[COORDINATOR]
    saga_id = _saga_id(request)
    view = await coord.operations.get_saga(saga_id)
    if view is None:
        return problem(404, "Not Found", f"no saga {saga_id}")
    # The ids of the commands in flight are for operators: with them (and the broker's leave
    # to publish replies) a reply could be forged.
    return json_response(saga_detail(view, command_ids=request.get(OPERATOR, False)))


async def _verb(request: web.Request, verb: str) -> web.StreamResponse:
    coord = request.app[COORDINATOR]
    saga_id = _saga_id(request)
    body: ReasonBody = await read_body(request, ReasonBody)
    actor = request[ACTOR]
    ops = coord.operations
    if verb == "cancel":
        outcome = await ops.cancel(saga_id, body.reason, actor)
    elif verb == "retry":
        outcome = await ops.retry(saga_id, body.reason, actor)
    elif verb == "abandon":
        outcome = await ops.abandon(saga_id, body.reason, actor)
    else:
        outcome = await ops.skip(saga_id, request.match_info["step"], body.reason, actor)
    if outcome.kind == "rejected" and outcome.reason == "unknown_saga":
        return problem(404, "Not Found", f"no saga {saga_id}")
    if outcome.kind in ("refused", "ignored", "rejected"):
        return problem(409, "Conflict", outcome.note or f"{verb} is not possible now")
    status = outcome.status
    return json_response(
        {"saga_id": saga_id, "status": str(status), "verdict": outcome.kind}, status=202
    )


async def cancel(request: web.Request) -> web.StreamResponse:
    """POST /sagas/{id}/cancel."""
    return await _verb(request, "cancel")


async def retry(request: web.Request) -> web.StreamResponse:
    """POST /sagas/{id}/retry."""
    return await _verb(request, "retry")


async def skip(request: web.Request) -> web.StreamResponse:
    """POST /sagas/{id}/steps/{step}/skip."""
    return await _verb(request, "skip")


async def abandon(request: web.Request) -> web.StreamResponse:
    """POST /sagas/{id}/abandon: give the saga up for good, compensating nothing more."""
    return await _verb(request, "abandon")


async def get_stats(request: web.Request) -> web.StreamResponse:
    """GET /stats?window=SECONDS."""
    coord = request.app[COORDINATOR]
    try:
        window = int(request.query.get("window", "3600"))
    except ValueError:
        return bad_query("window", "a whole number of seconds")
    if not 0 < window <= MAX_STATS_WINDOW:
        return bad_query("window", f"from 1 to {MAX_STATS_WINDOW} seconds (ten years)")
    return json_response(await coord.operations.stats(timedelta(seconds=window)))


async def saga_types(request: web.Request) -> web.StreamResponse:
    """GET /saga-types: every loaded saga type with its versions, steps, locks and input."""
    return json_response({"saga_types": describe(request.app[COORDINATOR].registry)})


async def livez(_request: web.Request) -> web.StreamResponse:
    """GET /livez: the process is alive."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """GET /readyz: database, broker and schema version checked."""
    checks = await request.app[COORDINATOR].readiness()
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics: Prometheus text format."""
    body = await request.app[COORDINATOR].metrics_text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(_request: web.Request) -> web.StreamResponse:
    """GET /openapi.json: this API's OpenAPI document."""
    return json_response(document())


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/sagas", start_saga),
    ("GET", "/sagas", list_sagas),
    ("GET", "/sagas/{saga_id}", get_saga),
    ("POST", "/sagas/{saga_id}/cancel", cancel),
    ("POST", "/sagas/{saga_id}/retry", retry),
    ("POST", "/sagas/{saga_id}/steps/{step}/skip", skip),
    ("POST", "/sagas/{saga_id}/abandon", abandon),
    ("GET", "/stats", get_stats),
    ("GET", "/saga-types", saga_types),
    *DEAD_LETTER_ROUTES,
    ("GET", "/livez", livez),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]
"""Every route: (method, path, handler). The OpenAPI document is checked against this list."""
