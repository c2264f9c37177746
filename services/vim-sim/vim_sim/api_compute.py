"""Servers, Nova v2.1 flavoured: create with quota, show, list with filters, delete.

A server is BUILD until `boot_seconds` have passed since its creation, then ACTIVE; the status
is computed when read, so no background task runs.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from vim_sim.addressing import allocate_address
from vim_sim.catalog import find_flavor, find_image
from vim_sim.errors import NovaError
from vim_sim.ledger import record_create, record_effect, replay
from vim_sim.models import Network, Port, Server
from vim_sim.projects import lock_project, usage
from vim_sim.routing import COMPUTE_PATH, Route, base_url, read_model
from vim_sim.state import CALLER_KEY, CallContext, Caller, SimState

SAGA_METADATA_KEY = "convection_saga_id"
"""Metadata key that records the saga which created a server."""

_Meta = Annotated[str, Field(max_length=255)]


class _NetworkRef(BaseModel):
    uuid: str


class _ServerBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: Annotated[str, Field(min_length=1, max_length=255)]
    image_ref: str = Field(alias="imageRef")
    flavor_ref: str = Field(alias="flavorRef")
    networks: list[_NetworkRef] | Literal["auto", "none"] = "none"
    metadata: dict[_Meta, _Meta] = {}


class ServerCreate(BaseModel):
    """The body of `POST /compute/v2.1/servers`; other Nova attributes are ignored."""

    server: _ServerBody


class ComputeApi:
    """Creates, shows, lists and deletes servers."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        """Return the server endpoints."""
        servers = f"{COMPUTE_PATH}/servers"
        return [
            Route("POST", servers, self.create_server, "create_server"),
            Route("GET", servers, self.list_servers, "list_servers"),
            Route("GET", servers + "/detail", self.list_servers, "list_servers"),
            Route("GET", servers + "/{server_id}", self.get_server, "get_server"),
            Route("DELETE", servers + "/{server_id}", self.delete_server, "delete_server"),
        ]

    async def create_server(self, request: web.Request) -> web.Response:
        """Create a server; 202 `{"server": {"id", "links", ...}}`, 400 or 403 (quota)."""
        body = (await read_model(request, ServerCreate, NovaError.bad_request)).server
        image = find_image(body.image_ref)
        if image is None:
            raise NovaError.bad_request(f"Image {body.image_ref} could not be found.")
        flavor = find_flavor(body.flavor_ref)
        if flavor is None:
            raise NovaError.bad_request(f"Flavor {body.flavor_ref} could not be found.")
        network_ids = [ref.uuid for ref in body.networks] if isinstance(body.networks, list) else []
        caller, call, now = request[CALLER_KEY], CallContext.from_request(request), self._now()
        metadata = dict(body.metadata)
        if call.saga_id is not None:
            metadata.setdefault(SAGA_METADATA_KEY, call.saga_id)
        async with self._state.sessions.begin() as session:
            project = await lock_project(session, caller.project_id)
            replayed = await replay(session, caller, call, "create_server", NovaError.conflict)
            if replayed is not None:
                return replayed
            for network_id in dict.fromkeys(network_ids):
                network = await session.get(Network, network_id)
                if network is None or network.project_id != caller.project_id:
                    raise NovaError.bad_request(f"Network {network_id} could not be found.")
            used = await usage(session, caller.project_id)
            _check_quota("instances", 1, used.instances, project.quota_instances)
            _check_quota("cores", flavor.vcpus, used.cores, project.quota_cores)
            server = Server(
                id=str(uuid.uuid4()),
                project_id=caller.project_id,
                name=body.name,
                image_id=image.id,
                flavor_id=flavor.id,
                vcpus=flavor.vcpus,
                meta=metadata,
                saga_id=call.saga_id,
                created_at=now,
            )
            session.add(server)
            await session.flush()
            await _plug(session, server.id, network_ids)
            compute_url = f"{base_url(request)}{COMPUTE_PATH}"
            reply = {
                "server": {
                    "id": server.id,
                    "links": _links(compute_url, server.id),
                    "OS-DCF:diskConfig": "MANUAL",
                    "security_groups": [{"name": "default"}],
                    "adminPass": secrets.token_urlsafe(9),
                }
            }
            return record_create(
                session,
                caller,
                call,
                operation="create_server",
                resource_type="server",
                resource_id=server.id,
                at=now,
                status=202,
                body=reply,
            )

    async def get_server(self, request: web.Request) -> web.Response:
        """Show one server; 404 `itemNotFound` when unknown."""
        server_id = request.match_info["server_id"]
        async with self._state.sessions() as session:
            server = await _find_server(session, request[CALLER_KEY], server_id)
            views = await self._views(session, [server], f"{base_url(request)}{COMPUTE_PATH}")
        return web.json_response({"server": views[0]})

    async def list_servers(self, request: web.Request) -> web.Response:
        """List servers; filters `name` (regex search, as Nova), `status`, `metadata.KEY=VALUE`."""
        caller = request[CALLER_KEY]
        name = request.query.get("name")
        try:
            pattern = re.compile(name) if name else None
        except re.error as exc:
            raise NovaError.bad_request(f"Invalid regular expression for name: {exc}") from exc
        wanted_meta = {
            key.removeprefix("metadata."): value
            for key, value in request.query.items()
            if key.startswith("metadata.")
        }
        status = request.query.get("status")
        compute_url = f"{base_url(request)}{COMPUTE_PATH}"
        async with self._state.sessions() as session:
            result = await session.execute(
                select(Server)
                .where(Server.project_id == caller.project_id)
                .order_by(Server.created_at.desc(), Server.id)
            )
            servers = [
                server
                for server in result.scalars()
                if (pattern is None or pattern.search(server.name))
                and all(server.meta.get(key) == value for key, value in wanted_meta.items())
            ]
            views = await self._views(session, servers, compute_url)
        views = [view for view in views if status in (None, view["status"])]
        if not request.path.endswith("/detail"):
            views = [{key: view[key] for key in ("id", "name", "links")} for view in views]
        return web.json_response({"servers": views})

    async def delete_server(self, request: web.Request) -> web.Response:
        """Delete a server; 204, or 404 `itemNotFound` when unknown (no effect recorded)."""
        server_id = request.match_info["server_id"]
        caller, call = request[CALLER_KEY], CallContext.from_request(request)
        async with self._state.sessions.begin() as session:
            await lock_project(session, caller.project_id)
            server = await _find_server(session, caller, server_id)
            await session.execute(delete(Port).where(Port.server_id == server_id))
            await session.delete(server)
            record_effect(
                session,
                caller,
                call,
                operation="delete_server",
                resource_type="server",
                resource_id=server_id,
                at=self._now(),
            )
        return web.Response(status=204)

    async def _views(
        self, session: AsyncSession, servers: list[Server], compute_url: str
    ) -> list[dict[str, Any]]:
        addresses = await server_addresses(session, [server.id for server in servers])
        now, boot = self._now(), self._state.settings.boot_seconds
        return [
            server_view(server, addresses[server.id], now, boot, compute_url) for server in servers
        ]

    def _now(self) -> datetime:
        return self._state.clock()


def server_status(server: Server, now: datetime, boot_seconds: float) -> str:
    """Return BUILD until `boot_seconds` have passed since creation, then ACTIVE."""
    booted = (now - server.created_at).total_seconds() >= boot_seconds
    return "ACTIVE" if booted else "BUILD"


def server_view(
    server: Server,
    addresses: dict[str, list[dict[str, Any]]],
    now: datetime,
    boot_seconds: float,
    compute_url: str,
) -> dict[str, Any]:
    """Render a server as Nova's `servers/detail` does."""
    status = server_status(server, now, boot_seconds)
    image, flavor = find_image(server.image_id), find_flavor(server.flavor_id)
    stamp = server.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    active = status == "ACTIVE"
    return {
        "id": server.id,
        "name": server.name,
        "status": status,
        "tenant_id": server.project_id,
        "user_id": f"user-{server.project_id}",
        "created": stamp,
        "updated": stamp,
        "hostId": server.project_id[:16] if active else "",
        "image": {"id": server.image_id, "name": image.name if image else None},
        "flavor": flavor.as_server_flavor(compute_url) if flavor else {"id": server.flavor_id},
        "metadata": server.meta,
        "addresses": addresses,
        "key_name": None,
        "progress": 100 if active else 0,
        "links": _links(compute_url, server.id),
        "OS-EXT-STS:vm_state": "active" if active else "building",
        "OS-EXT-STS:task_state": None if active else "spawning",
        "OS-EXT-STS:power_state": 1 if active else 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
    }


async def server_addresses(
    session: AsyncSession, server_ids: list[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Return each server's addresses keyed by network name, as Nova's `addresses`."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    if not server_ids:
        return found
    rows = await session.execute(
        select(Port, Network.name)
        .join(Network, Network.id == Port.network_id)
        .where(Port.server_id.in_(server_ids))
        .order_by(Port.server_id, Port.position)
    )
    for port, network_name in rows:
        entries = found[port.server_id].setdefault(network_name, [])
        if port.ip_address is not None:
            entries.append(
                {
                    "addr": port.ip_address,
                    "version": 6 if ":" in port.ip_address else 4,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port.mac_address,
                }
            )
    return found


async def _plug(session: AsyncSession, server_id: str, network_ids: list[str]) -> None:
    for position, network_id in enumerate(network_ids):
        allocation = await allocate_address(session, network_id)
        if allocation is None:
            raise NovaError.bad_request(f"No more IP addresses available on network {network_id}.")
        session.add(
            Port(
                id=str(uuid.uuid4()),
                server_id=server_id,
                network_id=network_id,
                subnet_id=allocation.subnet_id,
                position=position,
                ip_address=allocation.ip_address,
                mac_address="fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)),
            )
        )
        # The next allocation on the same network must see this address as taken.
        await session.flush()


def _check_quota(resource: str, requested: int, used: int, limit: int) -> None:
    if used + requested > limit:
        raise NovaError.forbidden(
            f"Quota exceeded for {resource}: Requested {requested}, "
            f"but already used {used} of {limit} {resource}"
        )


async def _find_server(session: AsyncSession, caller: Caller, server_id: str) -> Server:
    server = await session.get(Server, server_id)
    if server is None or server.project_id != caller.project_id:
        raise NovaError.not_found(f"Instance {server_id} could not be found.")
    return server


def _links(compute_url: str, server_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{compute_url}/servers/{server_id}"},
        {"rel": "bookmark", "href": f"{compute_url.rsplit('/', 1)[0]}/servers/{server_id}"},
    ]
