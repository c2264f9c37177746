"""The dashboard's saga pages: the list (filters, keyset pages, counts) and one saga.

Both read with JavaScript off; with it on, htmx polls their `live` fragments, so the list
and a running saga's page update without a reload. The list's filters are those of
`GET /sagas` (`coordinator.saga_search`), from a plain GET form.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiMapping

from coordinator.api_http import COORDINATOR, Handler
from coordinator.saga_search import BadQuery, encode_cursor, parse, statuses
from coordinator.ui import timeline
from coordinator.ui.auth import CONFIG, SESSION
from coordinator.ui.present import TERMINAL, redact, render

_SAGA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
"""What `contracts.base.Identifier` allows; anything else names no saga."""
_FIELDS = ("saga_type", "stuck", "resource", "error_code", "limit", "cursor")
_TIMES = ("started_after", "started_before")
_TIMEZONE = re.compile(r"(Z|[+-]\d\d:\d\d)$")
VERBS = ("cancel", "retry", "abandon")
"""The verbs on a saga as a whole (skip is per step)."""
POLL_SECONDS = 2
"""How often a live fragment asks again."""


def saga_url(saga_id: str) -> str:
    """Return the dashboard path of a saga, its id percent-encoded."""
    return "/ui/sagas/" + quote(saga_id, safe="")


def query_pairs(query: MultiMapping[str]) -> list[tuple[str, str]]:
    """Translate the list form's fields into `GET /sagas` parameters.

    Status boxes become one comma list; a time without a zone (a datetime-local field)
    is UTC, as the form says; `field` and `value` become `input.<field>=<value>`.
    """
    pairs: list[tuple[str, str]] = []
    chosen = [v for v in query.getall("status", []) if v]
    if chosen:
        pairs.append(("status", ",".join(chosen)))
    pairs.extend((name, query[name]) for name in _FIELDS if query.get(name))
    for name in _TIMES:
        value = query.get(name, "")
        if value:
            pairs.append((name, value if _TIMEZONE.search(value) else value + "Z"))
    field = query.get("field", "").strip()
    if field:
        pairs.append((f"input.{field}", query.get("value", "")))
    return pairs


def _form(query: MultiMapping[str]) -> dict[str, Any]:
    """The filter form's values as sent, to show them again."""
    names = (*_FIELDS, *_TIMES, "field", "value")
    return {"statuses": set(query.getall("status", [])), **{n: query.get(n, "") for n in names}}


async def _list_context(request: web.Request) -> tuple[dict[str, Any], int]:
    coord = request.app[COORDINATOR]
    query = request.query
    kept = [(k, v) for k, v in query.items() if k != "cursor"]
    context: dict[str, Any] = {
        "form": _form(query),
        "all_statuses": statuses(),
        "saga_types": list(coord.registry.names()),
        "counts": await coord.operations.counts(),
        "query": urlencode(list(query.items())),
        "first_page": urlencode(kept),
        "items": [],
        "next_page": None,
        "error": None,
        "poll": POLL_SECONDS,
        "saga_url": saga_url,
    }
    try:
        f = parse(query_pairs(query))
    except BadQuery as exc:
        context["error"] = str(exc)
        return context, 400
    page = await coord.operations.list_sagas(f)
    context["items"] = page.items
    if page.next_after is not None:
        context["next_page"] = urlencode([*kept, ("cursor", encode_cursor(page.next_after))])
    return context, 200


async def list_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/sagas: counts by status, the filter form, one page of sagas."""
    context, status = await _list_context(request)
    return render("sagas.html", request, context, status=status)


async def list_live(request: web.Request) -> web.StreamResponse:
    """GET /ui/sagas/live: the counts and the page of sagas, for polling."""
    context, status = await _list_context(request)
    return render("_sagas_live.html", request, context, status=status)


async def find(request: web.Request) -> web.StreamResponse:
    """GET /ui/find?saga_id=...: go to one saga's page."""
    saga_id = request.query.get("saga_id", "").strip()
    if not _SAGA_ID.match(saga_id):
        raise web.HTTPBadRequest(text="a saga id is 1-128 of A-Za-z0-9._:/-")
    return web.Response(status=303, headers={"Location": saga_url(saga_id)})


def saga_id_of(request: web.Request) -> str:
    """Return the saga id of the path, or raise 404 if it is not one."""
    saga_id = request.match_info["saga_id"]
    if not _SAGA_ID.match(saga_id):
        raise web.HTTPNotFound(text="not a saga id (1-128 of A-Za-z0-9._:/-)")
    return saga_id


async def saga_context(request: web.Request, saga_id: str) -> dict[str, Any]:
    """Everything one saga's page shows; raise 404 if there is no such saga."""
    coord = request.app[COORDINATOR]
    view = await coord.operations.get_saga(saga_id)
    if view is None:
        raise web.HTTPNotFound(text=f"no saga {saga_id}")
    s = view.state
    entries = [row.entry for row in view.history]
    ended = s.status.value in TERMINAL
    now = datetime.now(UTC)
    drawn = timeline.layout(
        s.steps, entries, began=s.created_at, now=s.updated_at if ended else now
    )
    jaeger = _jaeger(request, s.trace_id)
    session = request[SESSION]
    return {
        "saga": s,
        "view": view,
        "ended": ended,
        "timeline": drawn,
        "history": view.history,
        "input": redact(s.input),
        "results": {step.name: redact(step.result) for step in s.steps if step.result},
        "failed_steps": [step for step in s.steps if step.forward.error or step.compensation.error],
        "skippable": [step.name for step in s.steps if step.compensation.status.value == "failed"],
        "verbs": verbs(s.status.value),
        "jaeger": jaeger,
        "url": saga_url(s.saga_id),
        "poll": POLL_SECONDS,
        "operator": session.operator,
        "notice": None,
        "did": did
        if (did := request.query.get("did")) in ("cancel", "retry", "abandon", "skip")
        else None,
    }


def verbs(status: str) -> list[str]:
    """Return the verbs worth offering in `status` (the server decides again when asked)."""
    offered = []
    if status in ("pending", "running"):
        offered.append("cancel")
    if status in ("failed", "compensation_failed"):
        offered.append("retry")
    if status not in TERMINAL or status in ("failed", "compensation_failed"):
        offered.append("abandon")
    return offered


def _jaeger(request: web.Request, trace_id: str | None) -> str | None:
    base = request.app[CONFIG].jaeger_url
    if not base or not trace_id:
        return None
    return f"{str(base).rstrip('/')}/trace/{quote(trace_id, safe='')}"


async def saga_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/sagas/{id}: status, timeline, steps, input and results, history, actions."""
    context = await saga_context(request, saga_id_of(request))
    return render("saga.html", request, context)


async def saga_live(request: web.Request) -> web.StreamResponse:
    """GET /ui/sagas/{id}/live: the saga's changing parts, for polling."""
    context = await saga_context(request, saga_id_of(request))
    return render("_saga_live.html", request, context)


async def home(_request: web.Request) -> web.StreamResponse:
    """GET /ui/: the saga list."""
    return web.Response(status=303, headers={"Location": "/ui/sagas"})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/", home),
    ("GET", "/sagas", list_page),
    ("GET", "/sagas/live", list_live),
    ("GET", "/find", find),
    ("GET", "/sagas/{saga_id}", saga_page),
    ("GET", "/sagas/{saga_id}/live", saga_live),
]
"""The saga pages, relative to `/ui`."""
