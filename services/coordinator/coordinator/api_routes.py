"""The routes of the HTTP API: start, list, inspect, cancel, retry, skip, stats, health.

Each route reads its request, calls the coordinator's `Operations` (or, for dead letters in
`coordinator.api_dead_letters`, its `dead_letters`), and answers JSON or a problem; none
reaches into the processor, the store or the database engine.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Identifier, Name
from coordinator.api_dead_letters import DEAD_LETTER_ROUTES
from coordinator.api_http import (
    ACTOR,
    COORDINATOR,
    OPERATOR,
    Handler,
    errors_problem,
    json_response,
    problem,
    read_body,
)
from coordinator.catalogue import describe
from coordinator.openapi import document
from coordinator.operations import Started
from coordinator.store import SagaFilter
from coordinator.views import saga_detail


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
        return errors_problem([error], started.note)
    if started.kind == "rejected" and started.reason == "invalid_input":
        return errors_problem(list(started.errors), f"the input of {body.saga_type} is invalid")
    if started.kind == "rejected":
        return problem(422, "Unprocessable Content", started.note)
    if started.kind == "conflict":
        if keyed:
            return problem(422, "Unprocessable Content", started.note)
        return problem(409, "Conflict", started.note)
    return json_response(
        {"saga_id": started.saga_id, "status": str(started.status) if started.status else None},
        status=202,
        headers={"Location": f"/sagas/{started.saga_id}"},
    )


async def list_sagas(request: web.Request) -> web.StreamResponse:
    """GET /sagas: filters status (comma list), saga_type, since, until, stuck; paginated."""
    coord = request.app[COORDINATOR]
    q = request.query
    try:
        limit = min(int(q.get("limit", "50")), 500)
        offset = int(q.get("cursor", "0") or 0)
        since = datetime.fromisoformat(q["since"]) if q.get("since") else None
        until = datetime.fromisoformat(q["until"]) if q.get("until") else None
    except ValueError as exc:
        return problem(400, "Bad Request", f"bad query parameter: {exc}")
    if limit < 1 or offset < 0:
        return problem(400, "Bad Request", "limit must be positive and cursor not negative")
    for name, when in (("since", since), ("until", until)):
        if when is not None and when.tzinfo is None:
            return problem(400, "Bad Request", f"{name} needs a timezone, e.g. ...T10:00:00Z")
    f = SagaFilter(
        statuses=tuple(s for s in q.get("status", "").split(",") if s),
        saga_type=q.get("saga_type") or None,
        since=since,
        until=until,
        stuck=q.get("stuck", "").lower() in ("1", "true", "yes"),
        limit=limit,
        offset=offset,
    )
    items = await coord.operations.list_sagas(f)
    next_cursor = str(offset + limit) if len(items) == limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


async def get_saga(request: web.Request) -> web.StreamResponse:
    """GET /sagas/{id}: the saga with its steps, history, trace id and lock position."""
    coord = request.app[COORDINATOR]
    saga_id = request.match_info["saga_id"]
    view = await coord.operations.get_saga(saga_id)
    if view is None:
        return problem(404, "Not Found", f"no saga {saga_id}")
    # The ids of the commands in flight are for operators: with them (and the broker's leave
    # to publish replies) a reply could be forged.
    return json_response(saga_detail(view, command_ids=request.get(OPERATOR, False)))


async def _verb(request: web.Request, verb: str) -> web.StreamResponse:
    coord = request.app[COORDINATOR]
    saga_id = request.match_info["saga_id"]
    body: ReasonBody = await read_body(request, ReasonBody)
    actor = request[ACTOR]
    ops = coord.operations
    if verb == "cancel":
        outcome = await ops.cancel(saga_id, body.reason, actor)
    elif verb == "retry":
        outcome = await ops.retry(saga_id, body.reason, actor)
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


async def get_stats(request: web.Request) -> web.StreamResponse:
    """GET /stats?window=SECONDS."""
    coord = request.app[COORDINATOR]
    try:
        window = int(request.query.get("window", "3600"))
    except ValueError:
        return problem(400, "Bad Request", "window is a number of seconds")
    if window <= 0:
        return problem(400, "Bad Request", "window must be positive")
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
    ("GET", "/stats", get_stats),
    ("GET", "/saga-types", saga_types),
    *DEAD_LETTER_ROUTES,
    ("GET", "/livez", livez),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]
"""Every route: (method, path, handler). The OpenAPI document is checked against this list."""
