"""The aiohttp application: routes from every API class, and the middlewares that steer calls.

For each API call the middlewares, outermost first: turn `ApiError` into its JSON reply; apply
injected faults (latency, failure before the effect); check `X-Auth-Token`; run the handler;
apply a failure after the effect (a lost reply) when so configured.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from convection.db import make_sessionmaker
from convection.tracing import http_server_span
from vim_sim.api_admin import AdminApi
from vim_sim.api_catalog import CatalogApi
from vim_sim.api_compute import ComputeApi
from vim_sim.api_identity import IdentityApi
from vim_sim.api_network import NetworkApi
from vim_sim.errors import ApiError
from vim_sim.faults import FaultInjector
from vim_sim.models import Base
from vim_sim.projects import seed_projects
from vim_sim.routing import Route
from vim_sim.settings import VimSimSettings
from vim_sim.state import CALLER_KEY, STATE_KEY, Clock, SimState, system_clock

AUTH_HEADER = "X-Auth-Token"


def create_app(
    settings: VimSimSettings, engine: AsyncEngine, *, clock: Clock = system_clock
) -> web.Application:
    """Build the simulator's application on `engine`; its tables are created when it starts.

    Args:
        settings: The simulator's settings (`host` and `port` are the runner's business).
        engine: The database; the caller owns it and disposes of it.
        clock: Source of "now", for token expiry and server boot; tests pass a manual one.
    """
    state = SimState(
        settings=settings,
        sessions=make_sessionmaker(engine),
        clock=clock,
        faults=FaultInjector(settings.faults),
    )
    identity = IdentityApi(state)
    routes = [
        *identity.routes(),
        *CatalogApi().routes(),
        *ComputeApi(state).routes(),
        *NetworkApi(state).routes(),
        *AdminApi(state).routes(),
    ]
    table: dict[AbstractRoute, Route] = {}
    app = web.Application(
        middlewares=[_traced(), _errors(table), _steer(table, identity, state.faults)]
    )
    for route in routes:
        table[app.router.add_route(route.method, route.path, route.handler)] = route
    app[STATE_KEY] = state

    async def create_schema(app: web.Application) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await seed_projects(state.sessions, settings.projects, clock())

    app.on_startup.append(create_schema)
    return app


def _traced() -> Middleware:
    # Outermost: one SERVER span per request, child of the caller's traceparent, so the
    # adapter's calls and what the VIM did for them sit in the saga's trace.
    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else request.path
        with http_server_span(request.method, route, request.path, request.headers) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                span.set_attribute("http.response.status_code", exc.status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            return response

    return traced


def _errors(table: dict[AbstractRoute, Route]) -> Middleware:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.status)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            if request.match_info.route in table:
                raise
            # No such endpoint: answer in JSON too, so clients parse every error the same way.
            body = {"error": {"code": exc.status, "message": f"{exc.reason}: {request.path}"}}
            return web.json_response(body, status=exc.status, headers=_allow(exc))

    return errors


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _steer(
    table: dict[AbstractRoute, Route], identity: IdentityApi, faults: FaultInjector
) -> Middleware:
    @web.middleware
    async def steer(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = table.get(request.match_info.route)
        if route is None:
            return await handler(request)
        if route.operation is not None:
            await faults.before_call(route.operation)
        if route.auth:
            request[CALLER_KEY] = await identity.authenticate(request.headers.get(AUTH_HEADER))
        response = await handler(request)
        if route.operation is not None:
            faults.after_call(route.operation)
        return response

    return steer
