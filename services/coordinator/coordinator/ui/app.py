"""The dashboard's application: mounted under `/ui/` on the API's server, by `create_ui`.

One middleware does what every page shares: it finds the session (`coordinator.ui.auth`),
sends a browser without one to the login page, refuses a POST from another origin, without
the form's CSRF token or, for an action, without the operator role, and puts the security
headers on every answer (a strict Content-Security-Policy: scripts and styles only from our
own static files, nothing inline). Pages read only the coordinator's `Operations`,
`dead_letters`, `registry` and `queues`, like the API's routes.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from coordinator.api_http import COORDINATOR, Backend, Handler
from coordinator.ui import actions, auth, pages, sagas
from coordinator.ui.auth import CONFIG
from coordinator.ui.present import install, render

if TYPE_CHECKING:
    from coordinator.api import ApiSettings

PREFIX = "/ui"
"""Where the dashboard is mounted."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The Content-Security-Policy of every answer: our own files only, nothing inline."""
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
KEYS = web.AppKey("ui_keys", auth.Keys)
"""The process's CSRF key, for an API without tokens."""
_PUBLIC = {f"{PREFIX}/login"}
_STATIC = f"{PREFIX}/static/"
# Posts anyone signed in may send; every other POST is an action and needs an operator.
_ANYONE = {f"{PREFIX}/logout"}


def static_dir() -> Path:
    """Return the folder of the dashboard's scripts, styles and their licences."""
    return Path(str(files("coordinator.ui") / "static"))


def session_of(request: web.Request) -> auth.Session | None:
    """Return the request's session, or None when it carries no configured token."""
    config = request.app[CONFIG]
    if config.open:
        return auth.Session("loopback", True, auth.csrf_token(request.app[KEYS].local), False)
    token = auth.token_of(request)
    found = config.resolve(token) if token else None
    if found is None:
        return None
    actor, operator = found
    return auth.Session(actor, operator, auth.csrf_token(token.encode()), True)


def _page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return render("error.html", request, {"title": title, "detail": detail}, status=status)


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith(_STATIC):
        return await handler(request)
    session = session_of(request)
    if path in _PUBLIC:
        if request.method == "POST" and not auth.same_origin(request):
            return _page(request, 403, "Forbidden", "sign in from this dashboard's own page")
        return await handler(request)
    if session is None:
        target = f"{PREFIX}/login?next={quote(path, safe='/')}"
        if request.headers.get("HX-Request"):
            # A poll whose session ended: htmx sends the whole page to the login, rather
            # than swapping the login form into a fragment.
            return web.Response(status=401, headers={"HX-Redirect": target})
        if request.method == "GET":
            return web.Response(status=303, headers={"Location": target})
        return _page(request, 401, "Unauthorized", "sign in with a token first")
    request[auth.SESSION] = session
    if request.method == "POST":
        if not auth.same_origin(request):
            return _page(request, 403, "Forbidden", "this form was not sent from this dashboard")
        form = await request.post()
        sent = form.get(auth.CSRF_FIELD)
        if not auth.csrf_ok(session, sent if isinstance(sent, str) else None):
            return _page(request, 403, "Forbidden", "the form's CSRF token is missing or stale")
        if path not in _ANYONE and not session.operator:
            return _page(
                request, 403, "Forbidden", "this action needs a token with role 'operator'"
            )
    return await handler(request)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _checked(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _page(request, exc.status, exc.reason, exc.text or "")
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith(_STATIC):
        # Pages show live state and an operator's forms: never from a cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET /ui/login: the form that takes a token."""
    context = {"next": auth.safe_next(request.query.get("next")), "failed": False}
    return render("login.html", request, context)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /ui/login: keep a configured token in the session cookie, then go on."""
    form = await request.post()
    token = str(form.get("token", "")).strip()
    target = auth.safe_next(str(form.get("next", "")))
    if not token or request.app[CONFIG].resolve(token) is None:
        context = {"next": target, "failed": True}
        return render("login.html", request, context, status=401)
    response = web.Response(status=303, headers={"Location": target})
    auth.set_session(response, request, token)
    return response


async def logout(_request: web.Request) -> web.StreamResponse:
    """POST /ui/logout: forget the session."""
    response = web.Response(status=303, headers={"Location": f"{PREFIX}/login"})
    auth.end_session(response)
    return response


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/login", login_page),
    ("POST", "/login", login),
    ("POST", "/logout", logout),
    *sagas.ROUTES,
    *actions.ROUTES,
    *pages.ROUTES,
]
"""Every page, fragment and form of the dashboard, relative to `/ui`."""


def create_ui(backend: Backend, settings: ApiSettings) -> web.Application:
    """Build the dashboard application (mount it with `app.add_subapp("/ui", ...)`)."""
    app = web.Application(middlewares=[_middleware])
    app[COORDINATOR] = backend
    app[CONFIG] = auth.UiConfig(
        resolve=lambda token: _resolve(settings, token),
        open=not settings.tokens,
        jaeger_url=settings.jaeger_url,
    )
    app[KEYS] = auth.Keys()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("coordinator.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    install(env)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_static("/static", static_dir(), append_version=True)
    return app


def _resolve(settings: ApiSettings, token: str) -> tuple[str, bool] | None:
    spec = settings.resolve(token)
    return None if spec is None else (spec.name or spec.role, spec.role == "operator")


def mount(parent: web.Application, backend: Backend, settings: ApiSettings) -> None:
    """Serve the dashboard under `/ui/` of `parent`, and `/ui` as a redirect to it."""
    # Before the sub-application, whose prefix would otherwise answer `/ui` with a 404.
    parent.router.add_get(PREFIX, _to_sagas)
    parent.add_subapp(PREFIX, create_ui(backend, settings))


async def _to_sagas(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": f"{PREFIX}/sagas"})
