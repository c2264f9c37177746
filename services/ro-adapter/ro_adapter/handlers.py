"""The ro-adapter's handlers: networks and VDUs (VMs) of a Network Service on a VIM account.

What a step creates carries the mark of its idempotency key (a network tag, a server metadata
entry), so a compensation also finds what an uncertain step created but never reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from contracts import ro
from convection import StepContext, StepFailed, StepRetryable, handles
from convection.openstack import CallContext, Conflict, OpenStackError
from ro_adapter.connector import VimConnector, creator_mark, ns_tag, step_error

ConnectorFactory = Callable[[ro.VimTarget, CallContext], VimConnector]
"""Opens a connector to a VIM account for one step."""

MARK_KEY = "convection_creator"
"""Server metadata key (and network tag prefix) holding the creating step's mark."""


class RoHandlers:
    """Handlers of the ro service.

    Args:
        connect: Opens a connector to a VIM account.
        poll_interval: Seconds between status checks of booting servers.
        boot_timeout: Seconds a deployment waits for its servers before it is retried.
    """

    def __init__(
        self, connect: ConnectorFactory, *, poll_interval: float = 0.5, boot_timeout: float = 600
    ) -> None:
        self._connect = connect
        self._poll_interval = poll_interval
        self._boot_timeout = boot_timeout

    def _vim(self, target: ro.VimTarget, ctx: StepContext) -> VimConnector:
        return self._connect(target, CallContext(ctx.saga_id, ctx.step, ctx.action))

    @handles(ro.CreateNetworks)
    async def create_networks(self, cmd: ro.CreateNetworks, ctx: StepContext) -> ro.NetworksCreated:
        """Create each network with its subnet, tagged with the NS and the creating step."""
        vim = self._vim(cmd.vim, ctx)
        tags = [ns_tag(cmd.ns_id), creator_mark(ctx.idempotency_key)]
        created = []
        try:
            for spec in cmd.networks:
                network_id = await vim.create_network(spec, tags, ctx.idempotency_key)
                created.append(ro.CreatedNetwork(name=spec.name, network_id=network_id))
        except OpenStackError as exc:
            error = step_error(exc, created=bool(created))
            if isinstance(error, StepFailed):
                await self._undo_networks(vim, ctx.idempotency_key, error)
            raise error from exc
        return ro.NetworksCreated(networks=created)

    async def _undo_networks(self, vim: VimConnector, key: str, error: StepFailed) -> None:
        # A step that fails for good must leave no effect: the saga compensates only steps
        # that succeeded, so what this step half-made is removed here, before replying.
        try:
            for network in await vim.list_networks([creator_mark(key)]):
                await vim.delete_network(network.network_id)
        except OpenStackError as exc:
            # It cannot prove it left nothing: if it never succeeds, it must be compensated.
            raise StepRetryable(
                f"{error}; removing the networks it created failed: {exc}",
                code="cleanup_failed",
                uncertain=True,
            ) from exc

    @handles(ro.DeleteNetworks)
    async def delete_networks(self, cmd: ro.DeleteNetworks, ctx: StepContext) -> ro.NetworksDeleted:
        """Delete the given networks and any network the undone step created."""
        vim = self._vim(cmd.vim, ctx)
        try:
            ids = list(dict.fromkeys(cmd.network_ids))
            if ctx.undoes_key:
                found = await vim.list_networks([creator_mark(ctx.undoes_key)])
                ids += [n.network_id for n in found if n.network_id not in ids]
            for network_id in ids:
                await vim.delete_network(network_id)
        except Conflict as exc:
            # Servers still hold ports on it; their deletion is under way elsewhere.
            raise StepRetryable(exc.message, code="network_in_use") from exc
        except OpenStackError as exc:
            raise step_error(exc) from exc
        return ro.NetworksDeleted(network_ids=ids)

    @handles(ro.FindNsNetworks)
    async def find_ns_networks(self, cmd: ro.FindNsNetworks, ctx: StepContext) -> ro.NetworksFound:
        """List the networks tagged with the NS."""
        try:
            found = await self._vim(cmd.vim, ctx).list_networks([ns_tag(cmd.ns_id)])
        except OpenStackError as exc:
            raise step_error(exc) from exc
        networks = [ro.CreatedNetwork(name=n.name, network_id=n.network_id) for n in found]
        return ro.NetworksFound(networks=networks)

    @handles(ro.DeployVdus)
    async def deploy_vdus(self, cmd: ro.DeployVdus, ctx: StepContext) -> ro.VdusDeployed:
        """Create every VM of the VNF's VDUs, then wait until all are ACTIVE."""
        vim = self._vim(cmd.vim, ctx)
        meta = {"ns_id": cmd.ns_id, "vnf": cmd.vnf, MARK_KEY: creator_mark(ctx.idempotency_key)}
        wanted: list[tuple[str, str]] = []
        try:
            for vdu in cmd.vdus:
                for index in range(vdu.count):
                    name = f"{cmd.ns_id}-{cmd.vnf}-{vdu.name}-{index}"[:255]
                    key = f"{ctx.idempotency_key}/{vdu.name}/{index}"
                    server_id = await vim.create_server(
                        name, vdu, cmd.network_ids, meta | {"vdu": vdu.name}, key
                    )
                    wanted.append((server_id, vdu.name))
            servers = await self._wait_active(vim, wanted, ctx)
        except OpenStackError as exc:
            error = step_error(exc, created=bool(wanted))
            if isinstance(error, StepFailed):
                await self._undo_servers(vim, ctx.idempotency_key, error)
            raise error from exc
        except StepFailed as error:
            await self._undo_servers(vim, ctx.idempotency_key, error)
            raise
        return ro.VdusDeployed(vnf=cmd.vnf, servers=servers)

    async def _undo_servers(self, vim: VimConnector, key: str, error: StepFailed) -> None:
        # As for networks: the VMs created before the quota ran out are this step's to remove.
        try:
            for server in await vim.list_servers({MARK_KEY: creator_mark(key)}):
                await vim.delete_server(server.server_id)
        except OpenStackError as exc:
            raise StepRetryable(
                f"{error}; removing the VMs it created failed: {exc}",
                code="cleanup_failed",
                uncertain=True,
            ) from exc

    async def _wait_active(
        self, vim: VimConnector, wanted: list[tuple[str, str]], ctx: StepContext
    ) -> list[ro.Server]:
        give_up = time.monotonic() + self._boot_timeout
        while True:
            servers = []
            for server_id, vdu in wanted:
                found = await vim.get_server(server_id)
                if found.status == "ERROR":
                    raise StepFailed(f"server {server_id} of VDU {vdu} failed", code="vdu_error")
                servers.append(
                    ro.Server(server_id=server_id, name=found.name, vdu=vdu, status=found.status)
                )
            active = sum(s.status == "ACTIVE" for s in servers)
            if active == len(servers):
                return servers
            if time.monotonic() > give_up:
                raise StepRetryable(f"{active}/{len(servers)} servers ACTIVE", code="boot_timeout")
            await ctx.progress(
                f"{active}/{len(servers)} servers ACTIVE", 100 * active / len(servers)
            )
            await asyncio.sleep(self._poll_interval)

    @handles(ro.DeleteVdus)
    async def delete_vdus(self, cmd: ro.DeleteVdus, ctx: StepContext) -> ro.VdusDeleted:
        """Delete the given servers and any server the undone step created."""
        vim = self._vim(cmd.vim, ctx)
        try:
            ids = list(dict.fromkeys(cmd.server_ids))
            if ctx.undoes_key:
                found = await vim.list_servers({MARK_KEY: creator_mark(ctx.undoes_key)})
                ids += [s.server_id for s in found if s.server_id not in ids]
            for server_id in ids:
                await vim.delete_server(server_id)
        except OpenStackError as exc:
            raise step_error(exc) from exc
        return ro.VdusDeleted(server_ids=ids)

    @handles(ro.DeleteNsResources)
    async def delete_ns_resources(
        self, cmd: ro.DeleteNsResources, ctx: StepContext
    ) -> ro.VdusDeleted:
        """Delete every server of the NS, then every network of the NS."""
        vim = self._vim(cmd.vim, ctx)
        try:
            servers = await vim.list_servers({"ns_id": cmd.ns_id})
            for server in servers:
                await vim.delete_server(server.server_id)
            for network in await vim.list_networks([ns_tag(cmd.ns_id)]):
                await vim.delete_network(network.network_id)
        except Conflict as exc:
            raise StepRetryable(exc.message, code="network_in_use") from exc
        except OpenStackError as exc:
            raise step_error(exc) from exc
        return ro.VdusDeleted(server_ids=[s.server_id for s in servers])
