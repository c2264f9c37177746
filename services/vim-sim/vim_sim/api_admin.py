"""Admin endpoints for tests and operators: health, ledger, live resources, faults, projects.

They need no token and are never subject to injected faults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vim_sim.api_compute import server_status
from vim_sim.errors import ApiError
from vim_sim.faults import FaultConfig
from vim_sim.ledger import ledger_rows
from vim_sim.models import (
    IdempotentReply,
    LedgerEntry,
    Network,
    Port,
    Project,
    Server,
    Subnet,
    Token,
)
from vim_sim.projects import find_project, new_project, project_view, usage
from vim_sim.routing import Route, read_model
from vim_sim.settings import ProjectSpec
from vim_sim.state import SimState


def _bad_request(message: str) -> ApiError:
    return ApiError.plain(400, message)


class AdminApi:
    """Inspects and steers the simulator."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        """Return the admin endpoints (no operation name: faults never apply)."""
        return [
            Route("GET", "/healthz", self.health, auth=False),
            Route("GET", "/admin/ledger", self.ledger, auth=False),
            Route("GET", "/admin/resources", self.resources, auth=False),
            Route("GET", "/admin/faults", self.get_faults, auth=False),
            Route("POST", "/admin/faults", self.set_faults, auth=False),
            Route("DELETE", "/admin/faults", self.reset_faults, auth=False),
            Route("GET", "/admin/projects", self.list_projects, auth=False),
            Route("POST", "/admin/projects", self.add_project, auth=False),
            Route("POST", "/admin/reset", self.reset, auth=False),
        ]

    async def health(self, request: web.Request) -> web.Response:
        """Answer 200 `{"status": "ok"}` once the database answers."""
        async with self._state.sessions() as session:
            await session.execute(select(1))
        return web.json_response({"status": "ok"})

    async def ledger(self, request: web.Request) -> web.Response:
        """List ledger rows in order, optionally `?saga_id=` and/or `?project=` (name or id)."""
        async with self._state.sessions() as session:
            project_id = await self._project_id(session, request.query.get("project"))
            rows = await ledger_rows(
                session, saga_id=request.query.get("saga_id"), project_id=project_id
            )
        return web.json_response(rows)

    async def resources(self, request: web.Request) -> web.Response:
        """List live servers, networks and subnets, optionally `?saga_id=` / `?project=`."""
        saga_id = request.query.get("saga_id")
        now, boot = self._state.clock(), self._state.settings.boot_seconds
        async with self._state.sessions() as session:
            project_id = await self._project_id(session, request.query.get("project"))
            servers = await _live(session, Server, saga_id, project_id)
            networks = await _live(session, Network, saga_id, project_id)
            subnets = await _live(session, Subnet, saga_id, project_id)
        return web.json_response(
            {
                "servers": [_common(row) | _server(row, now, boot) for row in servers],
                "networks": [_common(row) | {"tags": row.tags} for row in networks],
                "subnets": [
                    _common(row) | {"network_id": row.network_id, "cidr": row.cidr}
                    for row in subnets
                ],
            }
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        """Show the faults in force (`fail_next` counts the failures left)."""
        return web.json_response(self._state.faults.config.model_dump(mode="json"))

    async def set_faults(self, request: web.Request) -> web.Response:
        """Replace every fault with the body's `FaultConfig`; 200 with the faults in force."""
        config = await read_model(request, FaultConfig, _bad_request)
        self._state.faults.configure(config)
        return await self.get_faults(request)

    async def reset_faults(self, request: web.Request) -> web.Response:
        """Remove every fault; 200 with the (empty) faults in force."""
        self._state.faults.reset()
        return await self.get_faults(request)

    async def list_projects(self, request: web.Request) -> web.Response:
        """List projects with their quota and usage."""
        async with self._state.sessions() as session:
            projects = (await session.execute(select(Project).order_by(Project.name))).scalars()
            views = [project_view(p, await usage(session, p.id)) for p in list(projects)]
        return web.json_response({"projects": views})

    async def add_project(self, request: web.Request) -> web.Response:
        """Add a project `{"name", "user", "password", "quota": {"cores", "instances"}}`; 201."""
        spec = await read_model(request, ProjectSpec, _bad_request)
        project = new_project(spec, self._state.clock())
        try:
            async with self._state.sessions.begin() as session:
                if await find_project(session, spec.name) is not None:
                    raise ApiError.plain(409, f"Project {spec.name} already exists.")
                session.add(project)
        except IntegrityError as exc:
            # Lost a race with a concurrent add of the same name.
            raise ApiError.plain(409, f"Project {spec.name} already exists.") from exc
        return web.json_response({"project": project_view(project)}, status=201)

    async def reset(self, request: web.Request) -> web.Response:
        """Delete all resources, the ledger, idempotency records and tokens; keep projects."""
        async with self._state.sessions.begin() as session:
            for model in (Port, Server, Subnet, Network, LedgerEntry, IdempotentReply, Token):
                await session.execute(delete(model))
        return web.json_response({"status": "reset"})

    async def _project_id(self, session: AsyncSession, ref: str | None) -> str | None:
        if ref is None:
            return None
        project = await find_project(session, ref)
        if project is None:
            raise ApiError.plain(404, f"Project {ref} could not be found.")
        return project.id


_Row = TypeVar("_Row", Server, Network, Subnet)


async def _live(
    session: AsyncSession, model: type[_Row], saga_id: str | None, project_id: str | None
) -> list[_Row]:
    query = select(model).order_by(model.created_at, model.id)
    if saga_id is not None:
        query = query.where(model.saga_id == saga_id)
    if project_id is not None:
        query = query.where(model.project_id == project_id)
    return list((await session.execute(query)).scalars())


def _common(row: Server | Network | Subnet) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "project_id": row.project_id, "saga_id": row.saga_id}


def _server(row: Server, now: datetime, boot_seconds: float) -> dict[str, Any]:
    return {
        "status": server_status(row, now, boot_seconds),
        "image": row.image_id,
        "flavor": row.flavor_id,
        "metadata": row.meta,
    }
