"""The dashboard's forms that act: a saga's cancel, retry, skip, abandon; replay and purge.

By the time a handler runs, the middleware has checked the origin, the CSRF token and the
operator role (`coordinator.ui.app`). Each form also needs a reason (recorded in the history
as the API's verbs do) and its confirmation box ticked: without JavaScript a second click is
the only confirmation there is, and the server is where it is checked.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from coordinator.api_http import COORDINATOR, Handler
from coordinator.store import PurgeSelector
from coordinator.ui.auth import SESSION
from coordinator.ui.present import render
from coordinator.ui.sagas import VERBS, saga_context, saga_id_of, saga_url

MAX_REASON = 1000
"""The longest reason, as the API's."""


class FormProblem(Exception):
    """A form that cannot be acted on: the message says what to fix."""


def _reason(form: MultiDictProxy[Any]) -> str:
    reason = str(form.get("reason", "")).strip()
    if not reason or len(reason) > MAX_REASON:
        raise FormProblem(f"give a reason (1 to {MAX_REASON} characters)")
    if form.get("confirm") != "yes":
        raise FormProblem("tick the confirmation box to go ahead")
    return reason


async def _refused(request: web.Request, saga_id: str, note: str, status: int) -> web.Response:
    context = await saga_context(request, saga_id)
    context["notice"] = note
    return render("saga.html", request, context, status=status)


async def saga_verb(request: web.Request) -> web.StreamResponse:
    """POST /ui/sagas/{id}/{verb} and /ui/sagas/{id}/steps/{step}/skip."""
    saga_id = saga_id_of(request)
    verb = request.match_info.get("verb", "skip")
    if verb not in (*VERBS, "skip"):
        raise web.HTTPNotFound(text=f"no action {verb}")
    form = await request.post()
    try:
        reason = _reason(form)
    except FormProblem as exc:
        return await _refused(request, saga_id, f"{verb}: {exc}", 422)
    ops = request.app[COORDINATOR].operations
    actor = request[SESSION].actor
    if verb == "cancel":
        outcome = await ops.cancel(saga_id, reason, actor)
    elif verb == "retry":
        outcome = await ops.retry(saga_id, reason, actor)
    elif verb == "abandon":
        outcome = await ops.abandon(saga_id, reason, actor)
    else:
        outcome = await ops.skip(saga_id, request.match_info["step"], reason, actor)
    if outcome.kind == "rejected" and outcome.reason == "unknown_saga":
        raise web.HTTPNotFound(text=f"no saga {saga_id}")
    if outcome.kind in ("refused", "ignored", "rejected"):
        note = f"{verb} was not done: {outcome.note or 'not possible in this status'}"
        return await _refused(request, saga_id, note, 409)
    # Post/redirect/get: a reload of the page that follows does not act again.
    return web.Response(status=303, headers={"Location": f"{saga_url(saga_id)}?did={verb}"})


async def replay(request: web.Request) -> web.StreamResponse:
    """POST /ui/dead-letters/{id}/replay: publish it again to the queue it died in."""
    try:
        dead_letter_id = int(request.match_info["dead_letter_id"])
    except ValueError:
        raise web.HTTPNotFound(text="not a dead letter id") from None
    form = await request.post()
    try:
        reason = _reason(form)
    except FormProblem as exc:
        raise web.HTTPUnprocessableEntity(text=f"replay: {exc}") from None
    done = await request.app[COORDINATOR].dead_letters.replay(
        dead_letter_id,
        reason=reason,
        again=form.get("again") == "yes",
        requested_by=request[SESSION].actor,
    )
    if done.kind == "not_found":
        raise web.HTTPNotFound(text=f"no dead letter {dead_letter_id}")
    if done.kind != "replayed":
        raise web.HTTPConflict(text=f"dead letter {dead_letter_id}: {done.note or done.kind}")
    location = f"/ui/dead-letters?replayed={dead_letter_id}"
    return web.Response(status=303, headers={"Location": location})


async def purge(request: web.Request) -> web.StreamResponse:
    """POST /ui/dead-letters/purge: delete the ticked dead letters, or those of a queue."""
    form = await request.post()
    try:
        _reason(form)
        ids = tuple(int(str(v)) for v in form.getall("id", []))
    except FormProblem as exc:
        raise web.HTTPUnprocessableEntity(text=f"purge: {exc}") from None
    except ValueError:
        raise web.HTTPBadRequest(text="purge: an id is not a number") from None
    queue = str(form.get("queue", "")).strip() or None
    selector = PurgeSelector(ids=ids, queue=queue)
    if selector.empty:
        raise web.HTTPUnprocessableEntity(text="purge: tick dead letters or name a queue")
    purged = await request.app[COORDINATOR].dead_letters.purge(selector)
    return web.Response(status=303, headers={"Location": f"/ui/dead-letters?purged={purged}"})


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/sagas/{saga_id}/steps/{step}/skip", saga_verb),
    ("POST", "/sagas/{saga_id}/{verb}", saga_verb),
    ("POST", "/dead-letters/purge", purge),
    ("POST", "/dead-letters/{dead_letter_id}/replay", replay),
]
"""The forms that act, relative to `/ui`."""
