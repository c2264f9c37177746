"""How the ro-adapter reaches a VIM: the `VimConnector` interface and its OpenStack connector.

Every create passes an idempotency key, so a repeated step gets the resource it created the
first time. Connector errors are `convection.openstack.OpenStackError`s; `step_error` turns
one into the step outcome it means.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from contracts import ro
from convection import StepFailed, StepRetryable
from convection.openstack import (
    CallContext,
    NotFound,
    OpenStackClient,
    OpenStackError,
    VimTransient,
)
from convection.sealing import Vault, is_sealed

_MAX_TAG = 60


def creator_mark(key: str) -> str:
    """Return the short stable mark of an idempotency key, kept on what its step created."""
    return "ck-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def ns_tag(ns_id: str) -> str:
    """Return the network tag that marks a network as belonging to NS `ns_id`."""
    tag = f"ns:{ns_id}"
    # The VIM caps tags at 60 characters; a longer NS id is tagged by its digest.
    return tag if len(tag) <= _MAX_TAG else "ns:" + hashlib.sha256(ns_id.encode()).hexdigest()[:48]


@dataclass(frozen=True)
class VimNetwork:
    """A network as the VIM lists it."""

    network_id: str
    name: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class VimServer:
    """A server as the VIM lists it."""

    server_id: str
    name: str
    status: str
    metadata: dict[str, str]


class VimConnector(Protocol):
    """One VIM project, as the ro-adapter uses it."""

    async def create_network(self, spec: ro.NetworkSpec, tags: list[str], key: str) -> str:
        """Create a network with one IPv4 subnet; return the network id."""
        ...

    async def list_networks(self, tags: list[str]) -> list[VimNetwork]:
        """List the networks carrying every tag of `tags`."""
        ...

    async def delete_network(self, network_id: str) -> bool:
        """Delete a network; return False when it was already gone."""
        ...

    async def create_server(
        self, name: str, vdu: ro.VduSpec, network_ids: list[str], meta: dict[str, str], key: str
    ) -> str:
        """Create a server; return its id."""
        ...

    async def get_server(self, server_id: str) -> VimServer:
        """Return a server."""
        ...

    async def list_servers(self, meta: dict[str, str]) -> list[VimServer]:
        """List the servers whose metadata has every pair of `meta`."""
        ...

    async def delete_server(self, server_id: str) -> bool:
        """Delete a server; return False when it was already gone."""
        ...


class OpenStackConnector:
    """A `VimConnector` over Nova and Neutron, for one VIM account and one saga step."""

    def __init__(self, client: OpenStackClient) -> None:
        self._client = client

    async def create_network(self, spec: ro.NetworkSpec, tags: list[str], key: str) -> str:
        """Create the network, then its subnet, each under its own idempotency key."""
        _, body = await self._client.call(
            "network",
            "POST",
            "/networks",
            json={"network": {"name": spec.name, "tags": tags}},
            idempotency_key=f"{key}/{spec.name}",
        )
        network_id = str(body["network"]["id"])
        subnet = {"network_id": network_id, "cidr": spec.cidr, "ip_version": 4}
        await self._client.call(
            "network",
            "POST",
            "/subnets",
            json={"subnet": subnet},
            idempotency_key=f"{key}/{spec.name}/subnet",
        )
        return network_id

    async def list_networks(self, tags: list[str]) -> list[VimNetwork]:
        """List networks by tags (all of them)."""
        _, body = await self._client.call(
            "network", "GET", "/networks", params={"tags": ",".join(tags)}
        )
        return [
            VimNetwork(str(n["id"]), str(n.get("name", "")), tuple(n.get("tags", [])))
            for n in body["networks"]
        ]

    async def delete_network(self, network_id: str) -> bool:
        """Delete a network; 404 means it is already gone."""
        return await self._delete("network", f"/networks/{network_id}")

    async def create_server(
        self, name: str, vdu: ro.VduSpec, network_ids: list[str], meta: dict[str, str], key: str
    ) -> str:
        """Create a server from the VDU's image and flavor on the given networks."""
        server = {
            "name": name,
            "imageRef": vdu.image,
            "flavorRef": vdu.flavor,
            "networks": [{"uuid": n} for n in network_ids],
            "metadata": meta,
        }
        _, body = await self._client.call(
            "compute", "POST", "/servers", json={"server": server}, idempotency_key=key
        )
        return str(body["server"]["id"])

    async def get_server(self, server_id: str) -> VimServer:
        """Return one server."""
        _, body = await self._client.call("compute", "GET", f"/servers/{server_id}")
        return _server(body["server"])

    async def list_servers(self, meta: dict[str, str]) -> list[VimServer]:
        """List servers by metadata."""
        params = {f"metadata.{k}": v for k, v in meta.items()}
        _, body = await self._client.call("compute", "GET", "/servers/detail", params=params)
        return [_server(s) for s in body["servers"]]

    async def delete_server(self, server_id: str) -> bool:
        """Delete a server; 404 means it is already gone."""
        return await self._delete("compute", f"/servers/{server_id}")

    async def _delete(self, service: str, path: str) -> bool:
        try:
            await self._client.call(service, "DELETE", path)
        except NotFound:
            return False
        return True


def _server(raw: dict[str, Any]) -> VimServer:
    return VimServer(
        server_id=str(raw["id"]),
        name=str(raw.get("name", "")),
        status=str(raw.get("status", "UNKNOWN")),
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
    )


def open_connector(
    http: aiohttp.ClientSession,
    target: ro.VimTarget,
    context: CallContext,
    *,
    vault: Vault | None = None,
) -> VimConnector:
    """Return a connector to `target`'s VIM (OpenStack is the only type so far).

    The password arrives sealed; only here, with the vault's private key, is it opened.
    """
    credentials = target.credentials
    if vault is None and is_sealed(credentials.password):
        raise StepFailed(
            "the credentials are sealed and this adapter has no CONVECTION_VAULT_KEY",
            code="vault_key_missing",
        )
    client = OpenStackClient(
        http,
        auth_url=credentials.auth_url,
        username=credentials.username,
        password=vault.open(credentials.password) if vault else credentials.password,
        project=credentials.project,
        context=context,
    )
    return OpenStackConnector(client)


def step_error(exc: OpenStackError, *, created: bool = False) -> StepFailed | StepRetryable:
    """Return the step exception an OpenStack error means, keeping the VIM's message.

    A retryable error of a step that creates is uncertain when the step created something
    already (`created`) or when the call itself may have taken effect (a timeout, a 5xx or
    a dropped connection, unlike a VIM that refused the connection): were the saga to
    compensate before a retry succeeds, the step must be undone too.
    """
    if exc.retryable:
        uncertain = created or isinstance(exc, VimTransient)
        return StepRetryable(exc.message, code=exc.code, uncertain=uncertain)
    return StepFailed(exc.message, code=exc.code)
