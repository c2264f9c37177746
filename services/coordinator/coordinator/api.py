"""The coordinator's HTTP API (aiohttp): sagas and their verbs, statistics, dead letters.

Documented by the OpenAPI document in `coordinator.openapi`, served at `/openapi.json`; the
routes are in `coordinator.api_routes`, what they share in `coordinator.api_http`.
Authentication: bearer tokens from configuration, each with a role: `reader` may GET,
`operator` may also start, cancel, retry, abandon, skip, and replay and purge dead letters.
With no token configured the API refuses to listen anywhere but loopback.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coordinator.api_http import (
    ACTOR,
    COORDINATOR,
    OPERATOR,
    Backend,
    Handler,
    guard,
    problem,
)
from coordinator.api_routes import ROUTES
from coordinator.errors import StoreUnavailable

logger = logging.getLogger(__name__)

__all__ = ["ROUTES", "ApiServer", "ApiSettings", "Backend", "Role", "TokenSpec", "create_api"]

Role = Literal["reader", "operator"]
"""What a token may do."""


class TokenSpec(BaseModel):
    """A configured token: its role and the name recorded in the history as who asked."""

    role: Role
    name: str | None = None


class ApiSettings(BaseSettings):
    """HTTP API settings: CONVECTION_API_HOST, _PORT, _TOKENS (JSON), _MAX_BODY_BYTES.

    Also CONVECTION_JAEGER_URL: the dashboard links each saga's trace there when it is set.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONVECTION_API_", frozen=True, extra="ignore", populate_by_name=True
    )

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: dict[str, Role | TokenSpec] = Field(default_factory=dict)
    """token -> role, or token -> {"role": ..., "name": ...}."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    jaeger_url: str | None = Field(default=None, validation_alias="CONVECTION_JAEGER_URL")
    """Jaeger's UI, e.g. http://jaeger:16686: the dashboard links `<it>/trace/<trace id>`."""

    def check(self) -> None:
        """Refuse an unauthenticated API on anything but loopback."""
        if self.tokens or _is_loopback(self.host):
            return
        raise ValueError(
            f"CONVECTION_API_HOST={self.host} is not loopback and no CONVECTION_API_TOKENS are "
            'configured: set tokens, e.g. CONVECTION_API_TOKENS=\'{"secret": "operator"}\', '
            "or listen on 127.0.0.1"
        )

    def resolve(self, token: str) -> TokenSpec | None:
        """Return the role and name of a token, or None if it is not configured."""
        spec = self.tokens.get(token)
        if spec is None:
            return None
        return TokenSpec(role=spec) if isinstance(spec, str) else spec


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SETTINGS = web.AppKey("settings", ApiSettings)
_OPEN = {"/livez", "/readyz", "/metrics", "/openapi.json"}
_DASHBOARD = "/ui"


def _dashboard(path: str) -> bool:
    return path == _DASHBOARD or path.startswith(_DASHBOARD + "/")


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # The dashboard checks its own sessions (a cookie, not only the bearer header).
    if request.path not in _OPEN and not _dashboard(request.path):
        if settings.tokens:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            spec = settings.resolve(token) if token else None
            if spec is None:
                return problem(
                    401,
                    "Unauthorized",
                    "send Authorization: Bearer <token> with a configured token",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if request.method != "GET" and spec.role != "operator":
                return problem(
                    403,
                    "Forbidden",
                    f"role {spec.role!r} may only read; this needs a token with role 'operator'",
                )
            request[ACTOR] = spec.name or spec.role
            request[OPERATOR] = spec.role == "operator"
        else:
            request[ACTOR] = "loopback"
            request[OPERATOR] = True
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413,
            "Payload Too Large",
            f"the body is over {settings.max_body_bytes} bytes",
            code="too_large",
        )
    except web.HTTPException as exc:
        if exc.status >= 400:
            return problem(exc.status, exc.reason, exc.text or "")
        raise
    except StoreUnavailable as exc:
        return problem(
            503, "Service Unavailable", f"the database is unavailable: {exc}; try again shortly"
        )
    except Exception:
        # A bug: the client still gets a problem document, never a bare text 500, and the
        # log has the traceback to report.
        logger.exception("%s %s failed", request.method, request.path[:200])
        return problem(
            500,
            "Internal Server Error",
            "the coordinator failed on this request; the error is in its log",
        )


def create_api(coordinator: Backend, settings: ApiSettings) -> web.Application:
    """Build the API application of one coordinator."""
    settings.check()
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=settings.max_body_bytes)
    app[COORDINATOR] = coordinator
    app[SETTINGS] = settings
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, guard(handler))
    # Imported here: the dashboard's template engine is not needed by a process that stops
    # at its settings, and `python -m coordinator` should say why fast.
    from coordinator.ui import mount

    mount(app, coordinator, settings)
    return app


class ApiServer:
    """Runs the API on host:port next to a coordinator; `port=0` picks a free port."""

    def __init__(self, coordinator: Backend, settings: ApiSettings) -> None:
        self._app = create_api(coordinator, settings)
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Start listening; return the base URL."""
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        await site.start()
        addresses = self._runner.addresses
        port = addresses[0][1] if addresses else self._settings.port
        self.url = f"http://{self._settings.host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
