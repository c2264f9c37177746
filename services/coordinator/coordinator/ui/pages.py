"""The dashboard's other pages: saga types, statistics, locks, dead letters, participants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from coordinator.api_http import COORDINATOR, Handler
from coordinator.catalogue import describe
from coordinator.dead_letter_ops import BadCursor, decode_cursor
from coordinator.store import DeadLetterFilter
from coordinator.ui import graph
from coordinator.ui.present import pretty, render
from coordinator.ui.sagas import saga_url

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
"""The windows the stats page offers, by label."""
ERROR_WINDOW = timedelta(minutes=15)
"""How far back a participant's error rate looks."""


async def types_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/types: every loaded saga type and version, with its instances."""
    coord = request.app[COORDINATOR]
    counts = await coord.operations.instances()
    context = {"types": describe(coord.registry), "counts": counts}
    return render("types.html", request, context)


async def type_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/types/{saga_type}?version=N: one version's graph and input schema."""
    coord = request.app[COORDINATOR]
    registry = coord.registry
    name = request.match_info["saga_type"]
    if name not in registry.names():
        raise web.HTTPNotFound(text=f"no saga type {name}")
    versions = list(reversed(registry.versions(name)))
    try:
        version = int(request.query.get("version", versions[0]))
    except ValueError:
        raise web.HTTPBadRequest(text="version: a whole number") from None
    saga = registry.get(name, version)
    if saga is None:
        raise web.HTTPNotFound(text=f"no version {version} of {name} is loaded here")
    counts = await coord.operations.instances()
    context = {
        "name": name,
        "saga": saga,
        "versions": versions,
        "version": version,
        "graph": graph.layout(saga),
        "node_width": graph.NODE_WIDTH,
        "node_height": graph.NODE_HEIGHT,
        "schema": pretty(saga.input_schema()),
        "counts": {v: counts.get((name, v), {"total": 0, "live": 0}) for v in versions},
    }
    return render("type.html", request, context)


def _window(request: web.Request) -> tuple[str, int]:
    label = request.query.get("window", "1h")
    if label not in WINDOWS:
        raise web.HTTPBadRequest(text=f"window: one of {', '.join(WINDOWS)}")
    return label, WINDOWS[label]


async def stats_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/stats?window=1h: per type and step, numbers and plots (`convection stats`)."""
    ops = request.app[COORDINATOR].operations
    label, seconds = _window(request)
    window = timedelta(seconds=seconds)
    stats = await ops.stats(window)
    series = await ops.series(window)
    plots: dict[str, Any] = {}
    for entry in stats["saga_types"]:
        cells = series["types"].get(entry["saga_type"], [])
        plots[entry["saga_type"]] = {
            "x": [int(cell["at"].timestamp()) for cell in cells],
            "started": [cell["started"] for cell in cells],
            "completed": [cell["completed"] for cell in cells],
            "failed": [cell["failed"] for cell in cells],
            "p95": [cell["p95_seconds"] for cell in cells],
        }
    context = {
        "windows": list(WINDOWS),
        "window": label,
        "stats": stats["saga_types"],
        "plots": plots,
        "bars": {e["saga_type"]: _bars(e["steps"]) for e in stats["saga_types"]},
    }
    return render("stats.html", request, context)


def _bars(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Lay out one bar per step (its p95, else mean, duration) for the stats page's SVG."""
    longest = max((s["p95_seconds"] or s["mean_seconds"] or 0.0 for s in steps), default=0.0)
    rows = []
    for i, s in enumerate(steps):
        value = s["p95_seconds"] or s["mean_seconds"] or 0.0
        width = 340 * value / longest if longest else 0.0
        rows.append({"step": s, "y": 8 + i * 24, "width": max(width, 1.0), "value": value})
    return {"rows": rows, "height": 16 + 24 * len(steps)}


async def locks_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/locks: every resource's holders and waiters, with mode and age."""
    ops = request.app[COORDINATOR].operations
    context = {"queues": await ops.locks(), "saga_url": saga_url}
    return render("locks.html", request, context)


async def dead_letters_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/dead-letters: newest first by keyset pages, filtered by queue or reason."""
    q = request.query
    after = None
    if q.get("cursor"):
        try:
            after = decode_cursor(q["cursor"])
        except BadCursor as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    f = DeadLetterFilter(
        queue=q.get("queue") or None, reason=q.get("reason") or None, limit=50, after=after
    )
    page = await request.app[COORDINATOR].dead_letters.list_dead_letters(f)
    context = {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "queue": q.get("queue", ""),
        "reason": q.get("reason", ""),
        "replayed": q.get("replayed"),
        "purged": q.get("purged"),
        "saga_url": saga_url,
    }
    return render("dead_letters.html", request, context)


async def participants_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/participants: each service's queue depth, consumers and recent error rate."""
    coord = request.app[COORDINATOR]
    queues = await coord.queues()
    errors = await coord.operations.service_errors(ERROR_WINDOW)
    rows = []
    for entry in queues:
        seen = errors.get(str(entry["service"]), {"finished": 0, "failed": 0, "retries": 0})
        rate = seen["failed"] / seen["finished"] if seen["finished"] else None
        rows.append({**entry, **seen, "error_rate": rate})
    context = {"rows": rows, "minutes": int(ERROR_WINDOW.total_seconds() // 60)}
    return render("participants.html", request, context)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/types", types_page),
    ("GET", "/types/{saga_type}", type_page),
    ("GET", "/stats", stats_page),
    ("GET", "/locks", locks_page),
    ("GET", "/dead-letters", dead_letters_page),
    ("GET", "/participants", participants_page),
]
"""The overview pages, relative to `/ui`."""
