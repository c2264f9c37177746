"""Who is looking at the dashboard, and whether a form they post may act.

The same tokens and roles as the API: a browser signs in once with its token, which is kept
in a session cookie (HttpOnly, so no script reads it; SameSite=Strict, so no other site's
page sends it; scoped to `/ui/`). A script may send `Authorization: Bearer` instead. Every
POST must come from a page of this origin (Origin, else Referer) and carry the form's CSRF
token, an HMAC of the session's token, so it holds across replicas without shared state.
With no token configured (loopback only, as for the API) everyone is the operator
`loopback`, and the CSRF key is the process's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

COOKIE = "convection_ui"
"""The session cookie: the token itself."""
CSRF_FIELD = "csrf"
"""The hidden form field every POST carries."""
_CSRF_MESSAGE = b"convection-ui-csrf-v1"


@dataclass(frozen=True)
class Session:
    """Who asked: the name recorded in the history, the role, and the CSRF token of forms."""

    actor: str
    operator: bool
    csrf: str
    signed_in: bool


@dataclass(frozen=True)
class UiConfig:
    """What the dashboard takes from the API's settings.

    Attributes:
        resolve: A token's (actor, is operator), or None when it is not configured.
        open: No token is configured (loopback only): everyone is the operator `loopback`.
        jaeger_url: Jaeger's base URL, for links to a saga's trace; None: no links.
    """

    resolve: Callable[[str], tuple[str, bool] | None]
    open: bool
    jaeger_url: str | None = None


CONFIG = web.AppKey("ui_config", UiConfig)
"""The app key of the dashboard's configuration."""
SESSION = web.RequestKey("ui_session", Session)
"""The request key of the session (set by the dashboard's middleware)."""


def csrf_token(key: bytes) -> str:
    """Return the CSRF token of a session whose secret is `key`."""
    return hmac.new(key, _CSRF_MESSAGE, hashlib.sha256).hexdigest()[:40]


class Keys:
    """The process's own CSRF key, for an API without tokens."""

    def __init__(self) -> None:
        self.local = secrets.token_bytes(32)


def token_of(request: web.Request) -> str:
    """Return the token a request carries: its bearer header, else its session cookie."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    return request.cookies.get(COOKIE, "")


def own_origin(request: web.Request) -> str:
    """Return this server's origin as the browser sees it (scheme://host[:port])."""
    return f"{request.scheme}://{request.host}"


def same_origin(request: web.Request) -> bool:
    """Tell whether a POST comes from a page of this origin (Origin, else Referer)."""
    mine = own_origin(request)
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == mine
    referer = request.headers.get("Referer")
    if not referer:
        # Browsers send Origin on every cross-site POST; a request with neither header is
        # refused all the same, since it cannot be told apart from a forged one.
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" == mine


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Tell whether a form's CSRF field matches the session's."""
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")


def set_session(response: web.StreamResponse, request: web.Request, token: str) -> None:
    """Keep `token` in the session cookie (until the browser closes)."""
    response.set_cookie(
        COOKIE,
        token,
        path="/ui/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def end_session(response: web.StreamResponse) -> None:
    """Forget the session cookie."""
    response.del_cookie(COOKIE, path="/ui/")


def safe_next(target: str | None) -> str:
    """Return where to go after signing in: a dashboard path, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/sagas"
