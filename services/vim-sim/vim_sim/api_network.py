"""Networks and subnets, Neutron v2.0 flavoured, scoped to the caller's project.

Deleting a network deletes its subnets with it (one `delete_network` effect), as Neutron does
for a network without ports; a network or subnet that a server still uses answers 409.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vim_sim.addressing import allocation_pool, choose_gateway, parse_cidr
from vim_sim.errors import NeutronError
from vim_sim.ledger import record_create, record_effect, replay
from vim_sim.models import Network, Port, Subnet
from vim_sim.projects import lock_project
from vim_sim.routing import NETWORK_PATH, Route, query_filters, read_model
from vim_sim.state import CALLER_KEY, CallContext, SimState

SAGA_TAG_PREFIX = "convection-saga:"
"""Prefix of the tag that records the saga which created a network."""

_Tag = Annotated[str, Field(min_length=1, max_length=60)]


class _NetworkBody(BaseModel):
    name: Annotated[str, Field(max_length=255)] = ""
    tags: list[_Tag] = []


class NetworkCreate(BaseModel):
    """The body of `POST /network/v2.0/networks`; other Neutron attributes are ignored."""

    network: _NetworkBody


class _SubnetBody(BaseModel):
    network_id: str
    cidr: str
    ip_version: Literal[4, 6] = 4
    name: Annotated[str, Field(max_length=255)] = ""
    gateway_ip: str | None = None


class SubnetCreate(BaseModel):
    """The body of `POST /network/v2.0/subnets`; other Neutron attributes are ignored."""

    subnet: _SubnetBody


def _conflict(message: str) -> NeutronError:
    return NeutronError.conflict("IdempotencyKeyReused", message)


def _network_not_found(network_id: str) -> NeutronError:
    return NeutronError.not_found("NetworkNotFound", f"Network {network_id} could not be found.")


class NetworkApi:
    """Creates, lists, shows and deletes networks and subnets."""

    def __init__(self, state: SimState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        """Return the network endpoints."""
        net, sub = f"{NETWORK_PATH}/networks", f"{NETWORK_PATH}/subnets"
        return [
            Route("POST", net, self.create_network, "create_network"),
            Route("GET", net, self.list_networks, "list_networks"),
            Route("GET", net + "/{network_id}", self.get_network, "get_network"),
            Route("DELETE", net + "/{network_id}", self.delete_network, "delete_network"),
            Route("POST", sub, self.create_subnet, "create_subnet"),
            Route("GET", sub, self.list_subnets, "list_subnets"),
            Route("GET", sub + "/{subnet_id}", self.get_subnet, "get_subnet"),
            Route("DELETE", sub + "/{subnet_id}", self.delete_subnet, "delete_subnet"),
        ]

    async def create_network(self, request: web.Request) -> web.Response:
        """Create a network; 201 `{"network": {...}}`."""
        body = (await read_model(request, NetworkCreate, NeutronError.bad_request)).network
        caller, call, now = request[CALLER_KEY], CallContext.from_request(request), self._clock()
        tags = list(dict.fromkeys(body.tags))
        if call.saga_id is not None:
            tags.append(f"{SAGA_TAG_PREFIX}{call.saga_id}")
        async with self._state.sessions.begin() as session:
            await lock_project(session, caller.project_id)
            replayed = await replay(session, caller, call, "create_network", _conflict)
            if replayed is not None:
                return replayed
            network = Network(
                id=str(uuid.uuid4()),
                project_id=caller.project_id,
                name=body.name,
                tags=tags,
                saga_id=call.saga_id,
                created_at=now,
            )
            session.add(network)
            return record_create(
                session,
                caller,
                call,
                operation="create_network",
                resource_type="network",
                resource_id=network.id,
                at=now,
                status=201,
                body={"network": network_view(network, [])},
            )

    async def list_networks(self, request: web.Request) -> web.Response:
        """List networks; filters `name`, `id` (exact), `tags` (all of), `tags-any` (any of)."""
        caller = request[CALLER_KEY]
        query = select(Network).where(Network.project_id == caller.project_id)
        if names := request.query.getall("name", []):
            query = query.where(Network.name.in_(names))
        if ids := request.query.getall("id", []):
            query = query.where(Network.id.in_(ids))
        all_tags, any_tags = query_filters(request, "tags"), query_filters(request, "tags-any")
        async with self._state.sessions() as session:
            networks = list((await session.execute(query.order_by(Network.created_at))).scalars())
            subnets = await _subnet_ids(session, (network.id for network in networks))
        networks = [
            network
            for network in networks
            if set(all_tags) <= set(network.tags)
            and (not any_tags or set(any_tags) & set(network.tags))
        ]
        return web.json_response(
            {"networks": [network_view(network, subnets[network.id]) for network in networks]}
        )

    async def get_network(self, request: web.Request) -> web.Response:
        """Show one network; 404 `NetworkNotFound` when unknown."""
        network_id = request.match_info["network_id"]
        async with self._state.sessions() as session:
            network = await _find_network(session, request[CALLER_KEY].project_id, network_id)
            if network is None:
                raise _network_not_found(network_id)
            subnets = await _subnet_ids(session, [network.id])
        return web.json_response({"network": network_view(network, subnets[network.id])})

    async def delete_network(self, request: web.Request) -> web.Response:
        """Delete a network and its subnets; 204, 404 when unknown, 409 while servers use it."""
        network_id = request.match_info["network_id"]
        caller, call = request[CALLER_KEY], CallContext.from_request(request)
        async with self._state.sessions.begin() as session:
            await lock_project(session, caller.project_id)
            network = await _find_network(session, caller.project_id, network_id)
            if network is None:
                raise _network_not_found(network_id)
            if await _count(session, Port.network_id == network_id):
                raise NeutronError.conflict(
                    "NetworkInUse",
                    f"Unable to complete operation on network {network_id}. "
                    "There are one or more ports still in use on the network.",
                )
            await session.execute(delete(Subnet).where(Subnet.network_id == network_id))
            await session.delete(network)
            record_effect(
                session,
                caller,
                call,
                operation="delete_network",
                resource_type="network",
                resource_id=network_id,
                at=self._clock(),
            )
        return web.Response(status=204)

    async def create_subnet(self, request: web.Request) -> web.Response:
        """Create a subnet on one of the caller's networks; 201 `{"subnet": {...}}`."""
        model = await read_model(request, SubnetCreate, NeutronError.bad_request)
        body = model.subnet
        cidr = parse_cidr(body.cidr, body.ip_version)
        gateway = choose_gateway(cidr, body.gateway_ip, given="gateway_ip" in body.model_fields_set)
        caller, call, now = request[CALLER_KEY], CallContext.from_request(request), self._clock()
        async with self._state.sessions.begin() as session:
            await lock_project(session, caller.project_id)
            replayed = await replay(session, caller, call, "create_subnet", _conflict)
            if replayed is not None:
                return replayed
            if await _find_network(session, caller.project_id, body.network_id) is None:
                raise _network_not_found(body.network_id)
            siblings = await session.execute(
                select(Subnet.cidr).where(Subnet.network_id == body.network_id)
            )
            for other in siblings.scalars():
                if cidr.overlaps(ipaddress.ip_network(other)):
                    raise NeutronError.bad_request(
                        f"Invalid input for operation: Requested subnet with cidr: {cidr} for "
                        f"network: {body.network_id} overlaps with another subnet."
                    )
            subnet = Subnet(
                id=str(uuid.uuid4()),
                project_id=caller.project_id,
                network_id=body.network_id,
                name=body.name,
                cidr=str(cidr),
                ip_version=body.ip_version,
                gateway_ip=gateway,
                saga_id=call.saga_id,
                created_at=now,
            )
            session.add(subnet)
            return record_create(
                session,
                caller,
                call,
                operation="create_subnet",
                resource_type="subnet",
                resource_id=subnet.id,
                at=now,
                status=201,
                body={"subnet": subnet_view(subnet)},
            )

    async def list_subnets(self, request: web.Request) -> web.Response:
        """List subnets; filters `network_id`, `name`, `id` (exact)."""
        query = select(Subnet).where(Subnet.project_id == request[CALLER_KEY].project_id)
        for name, column in (("network_id", Subnet.network_id), ("name", Subnet.name)):
            if values := request.query.getall(name, []):
                query = query.where(column.in_(values))
        if ids := request.query.getall("id", []):
            query = query.where(Subnet.id.in_(ids))
        async with self._state.sessions() as session:
            subnets = (await session.execute(query.order_by(Subnet.created_at))).scalars()
            return web.json_response({"subnets": [subnet_view(subnet) for subnet in subnets]})

    async def get_subnet(self, request: web.Request) -> web.Response:
        """Show one subnet; 404 `SubnetNotFound` when unknown."""
        subnet_id = request.match_info["subnet_id"]
        async with self._state.sessions() as session:
            subnet = await _find_subnet(session, request[CALLER_KEY].project_id, subnet_id)
        return web.json_response({"subnet": subnet_view(subnet)})

    async def delete_subnet(self, request: web.Request) -> web.Response:
        """Delete a subnet; 204, 404 when unknown, 409 while a server has an address in it."""
        subnet_id = request.match_info["subnet_id"]
        caller, call = request[CALLER_KEY], CallContext.from_request(request)
        async with self._state.sessions.begin() as session:
            await lock_project(session, caller.project_id)
            subnet = await _find_subnet(session, caller.project_id, subnet_id)
            if await _count(session, Port.subnet_id == subnet_id):
                raise NeutronError.conflict(
                    "SubnetInUse",
                    f"Unable to complete operation on subnet {subnet_id}: "
                    "One or more ports have an IP allocation from this subnet.",
                )
            await session.delete(subnet)
            record_effect(
                session,
                caller,
                call,
                operation="delete_subnet",
                resource_type="subnet",
                resource_id=subnet_id,
                at=self._clock(),
            )
        return web.Response(status=204)

    def _clock(self) -> datetime:
        return self._state.clock()


def network_view(network: Network, subnet_ids: list[str]) -> dict[str, object]:
    """Render a network as Neutron does."""
    stamp = network.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": network.id,
        "name": network.name,
        "tenant_id": network.project_id,
        "project_id": network.project_id,
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": False,
        "router:external": False,
        "port_security_enabled": True,
        "mtu": 1450,
        "subnets": subnet_ids,
        "tags": network.tags,
        "description": "",
        "availability_zones": ["nova"],
        "revision_number": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }


def subnet_view(subnet: Subnet) -> dict[str, object]:
    """Render a subnet as Neutron does."""
    hosts = allocation_pool(subnet)
    stamp = subnet.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": subnet.id,
        "name": subnet.name,
        "network_id": subnet.network_id,
        "tenant_id": subnet.project_id,
        "project_id": subnet.project_id,
        "cidr": subnet.cidr,
        "ip_version": subnet.ip_version,
        "gateway_ip": subnet.gateway_ip,
        "allocation_pools": [{"start": hosts[0], "end": hosts[1]}] if hosts else [],
        "enable_dhcp": True,
        "dns_nameservers": [],
        "host_routes": [],
        "tags": [],
        "description": "",
        "revision_number": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


async def _find_network(session: AsyncSession, project_id: str, network_id: str) -> Network | None:
    network = await session.get(Network, network_id)
    return network if network is not None and network.project_id == project_id else None


async def _find_subnet(session: AsyncSession, project_id: str, subnet_id: str) -> Subnet:
    subnet = await session.get(Subnet, subnet_id)
    if subnet is None or subnet.project_id != project_id:
        raise NeutronError.not_found("SubnetNotFound", f"Subnet {subnet_id} could not be found.")
    return subnet


async def _subnet_ids(session: AsyncSession, network_ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(network_ids)
    found: dict[str, list[str]] = defaultdict(list)
    if ids:
        rows = await session.execute(
            select(Subnet.network_id, Subnet.id)
            .where(Subnet.network_id.in_(ids))
            .order_by(Subnet.created_at)
        )
        for network_id, subnet_id in rows:
            found[network_id].append(subnet_id)
    return found


async def _count(session: AsyncSession, condition: ColumnElement[bool]) -> int:
    result = await session.execute(select(func.count()).select_from(Port).where(condition))
    return int(result.scalar_one())
