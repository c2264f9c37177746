"""The coordinator's HTTP API (aiohttp): start, list, inspect, cancel, retry, skip, stats.

Documented by the OpenAPI document in `coordinator.openapi`, served at `/openapi.json`.
Errors are application/problem+json, with pydantic's field errors under `errors`.
Authentication: bearer tokens from configuration, each with a role: `reader` may GET,
`operator` may also start, cancel, retry and skip. With no token configured the API refuses
to listen anywhere but loopback.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text

from contracts import StartSaga
from contracts.base import Identifier, Name
from coordinator import queries
from coordinator.openapi import document
from coordinator.processor import Outcome
from coordinator.trace import saga_start_span
from coordinator.views import saga_detail

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncEngine

    from convection.transport import Transport
    from coordinator.operations import Operations
    from coordinator.processor import Processor
    from sagas import Registry


class Backend(Protocol):
    """What the API needs of a running coordinator (coordinator.service.Coordinator)."""

    @property
    def registry(self) -> Registry:
        """The saga types it runs."""

    @property
    def processor(self) -> Processor:
        """The transaction path."""

    @property
    def operations(self) -> Operations:
        """Operator verbs and queries."""

    @property
    def db_engine(self) -> AsyncEngine:
        """Its database."""

    @property
    def transport(self) -> Transport:
        """Its broker connection."""

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """Its Prometheus registry."""

    async def refresh_gauges(self) -> None:
        """Bring the gauges (in flight, stuck, outbox backlog) up to date."""


Role = Literal["reader", "operator"]
"""What a token may do."""
PROBLEM = "application/problem+json"


class TokenSpec(BaseModel):
    """A configured token: its role and the name recorded in the history as who asked."""

    role: Role
    name: str | None = None


class ApiSettings(BaseSettings):
    """HTTP API settings: CONVECTION_API_HOST, _PORT, _TOKENS (JSON), _MAX_BODY_BYTES."""

    model_config = SettingsConfigDict(env_prefix="CONVECTION_API_", frozen=True, extra="ignore")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: dict[str, Role | TokenSpec] = Field(default_factory=dict)
    """token -> role, or token -> {"role": ..., "name": ...}."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

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


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Return an RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(
        body, status=status, content_type=PROBLEM, dumps=_dumps, headers=headers
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


COORDINATOR = web.AppKey("coordinator", Backend)
SETTINGS = web.AppKey("settings", ApiSettings)
ACTOR = web.RequestKey("actor", str)
"""Who asked: the token's name, else its role ("loopback" without tokens)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN = {"/livez", "/readyz", "/metrics", "/openapi.json"}


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.path not in _OPEN:
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
        else:
            request[ACTOR] = "loopback"
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413, "Payload Too Large", f"the body is over {settings.max_body_bytes} bytes"
        )
    except web.HTTPException as exc:
        if exc.status >= 400:
            return problem(exc.status, exc.reason, exc.text or "")
        raise


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Problem(problem(400, "Bad Request", f"the body is not JSON: {exc}")) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _Problem(_validation_problem(exc, "the body does not match the schema")) from exc


def _validation_problem(exc: ValidationError, detail: str) -> web.Response:
    errors = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)
    ]
    return problem(422, "Unprocessable Content", detail, errors=errors)


class _Problem(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def _guard(fn: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except _Problem as exc:
            return exc.response

    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- handlers ---------------------------------------------------------------------------------


async def start_saga(request: web.Request) -> web.StreamResponse:
    """POST /sagas: start a saga; honours Idempotency-Key."""
    coord = request.app[COORDINATOR]
    body: StartBody = await _body(request, StartBody)
    if body.saga_type not in coord.registry:
        known = ", ".join(coord.registry.names())
        return problem(
            422,
            "Unprocessable Content",
            f"unknown saga type {body.saga_type!r}; known: {known}",
            errors=[
                {"loc": ["saga_type"], "msg": "unknown saga type", "type": "unknown_saga_type"}
            ],
        )
    saga = coord.registry[body.saga_type]
    try:
        normalised = saga.parse_input(body.input).model_dump(mode="json")
    except ValidationError as exc:
        return _validation_problem(exc, f"the input of {body.saga_type} is invalid")
    key = request.headers.get("Idempotency-Key")
    saga_id = body.saga_id
    if saga_id is None and key:
        saga_id = "idem-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    saga_id = saga_id or uuid.uuid4().hex
    existing = await coord.operations.get_saga(saga_id)
    if existing is not None:
        same = existing.state.saga_type == body.saga_type and existing.state.input == normalised
        if not same:
            if key:
                return problem(
                    422, "Unprocessable Content", "this Idempotency-Key was used with another body"
                )
            return problem(409, "Conflict", f"saga {saga_id} exists with another input")
        return _started(saga_id, existing.state.status)
    msg = StartSaga(saga_type=body.saga_type, saga_id=saga_id, input=body.input)
    # A caller's traceparent makes the saga continue the caller's trace, as over AMQP.
    with saga_start_span(body.saga_type, saga_id, request.headers, {}) as trace_id:
        outcome: Outcome = await coord.processor.start_saga(
            msg, trace_id=trace_id, requested_by=request[ACTOR]
        )
    if outcome.kind == "rejected":
        return problem(422, "Unprocessable Content", outcome.note)
    status = outcome.status
    if status is None:
        view = await coord.operations.get_saga(saga_id)
        status = view.state.status if view else None
    return _started(saga_id, status)


def _started(saga_id: str, status: Any) -> web.Response:
    return _json(
        {"saga_id": saga_id, "status": str(status) if status else None},
        status=202,
        headers={"Location": f"/sagas/{saga_id}"},
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
    f = queries.SagaFilter(
        statuses=tuple(s for s in q.get("status", "").split(",") if s),
        saga_type=q.get("saga_type") or None,
        since=since,
        until=until,
        stuck=q.get("stuck", "").lower() in ("1", "true", "yes"),
        limit=limit,
        offset=offset,
    )
    async with coord.db_engine.connect() as conn:
        now = await coord.processor.store.now(conn)
        items = await queries.list_sagas(conn, f, now)
    next_cursor = str(offset + limit) if len(items) == limit else None
    return _json({"items": items, "next_cursor": next_cursor})


async def get_saga(request: web.Request) -> web.StreamResponse:
    """GET /sagas/{id}: the saga with its steps, history, trace id and lock position."""
    coord = request.app[COORDINATOR]
    saga_id = request.match_info["saga_id"]
    view = await coord.operations.get_saga(saga_id)
    if view is None:
        return problem(404, "Not Found", f"no saga {saga_id}")
    async with coord.db_engine.connect() as conn:
        wait = await queries.waiting(conn, saga_id)
    return _json(saga_detail(view, wait))


async def _verb(request: web.Request, verb: str) -> web.StreamResponse:
    coord = request.app[COORDINATOR]
    saga_id = request.match_info["saga_id"]
    body: ReasonBody = await _body(request, ReasonBody)
    if await coord.operations.get_saga(saga_id) is None:
        return problem(404, "Not Found", f"no saga {saga_id}")
    actor = request[ACTOR]
    ops = coord.operations
    if verb == "cancel":
        outcome = await ops.cancel(saga_id, body.reason, actor)
    elif verb == "retry":
        outcome = await ops.retry(saga_id, body.reason, actor)
    else:
        outcome = await ops.skip(saga_id, request.match_info["step"], body.reason, actor)
    if outcome.kind in ("refused", "ignored", "rejected"):
        return problem(409, "Conflict", outcome.note or f"{verb} is not possible now")
    view = await ops.get_saga(saga_id)
    status = view.state.status if view else outcome.status
    return _json({"saga_id": saga_id, "status": str(status), "verdict": outcome.kind}, status=202)


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
    async with coord.db_engine.connect() as conn:
        now = await coord.processor.store.now(conn)
        out = await queries.stats(conn, now, timedelta(seconds=window))
    return _json(out)


async def livez(_request: web.Request) -> web.StreamResponse:
    """GET /livez: the process is alive."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """GET /readyz: database, broker and schema version checked."""
    coord = request.app[COORDINATOR]
    checks: dict[str, str] = {}
    try:
        async with coord.db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {exc}"
    try:
        checks["broker"] = "ok" if await coord.transport.ping() else "disconnected"
    except Exception as exc:
        checks["broker"] = f"unreachable: {exc}"
    try:
        from coordinator.schema import check_schema

        await check_schema(coord.db_engine)
        checks["schema"] = "ok"
    except Exception as exc:
        checks["schema"] = str(exc)
    ready = all(v == "ok" for v in checks.values())
    return _json(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics: Prometheus text format."""
    coord = request.app[COORDINATOR]
    await coord.refresh_gauges()
    body = generate_latest(coord.metrics_registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(_request: web.Request) -> web.StreamResponse:
    """GET /openapi.json: this API's OpenAPI document."""
    return _json(document())


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/sagas", start_saga),
    ("GET", "/sagas", list_sagas),
    ("GET", "/sagas/{saga_id}", get_saga),
    ("POST", "/sagas/{saga_id}/cancel", cancel),
    ("POST", "/sagas/{saga_id}/retry", retry),
    ("POST", "/sagas/{saga_id}/steps/{step}/skip", skip),
    ("GET", "/stats", get_stats),
    ("GET", "/livez", livez),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]
"""Every route: (method, path, handler). The OpenAPI document is checked against this list."""


def create_api(coordinator: Backend, settings: ApiSettings) -> web.Application:
    """Build the API application of one coordinator."""
    settings.check()
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=settings.max_body_bytes)
    app[COORDINATOR] = coordinator
    app[SETTINGS] = settings
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, _guard(handler))
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
