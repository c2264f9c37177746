"""vim-adapter: VIM accounts (validate credentials, register, deregister, look up).

Run it as a process with `python -m vim_adapter` (see `convection.participant_main` for the
environment), or embedded with `run(transport=..., db_engine=...)`.
"""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import vim
from convection import Participant, ParticipantMetrics
from convection.sealing import Vault
from convection.transport import Transport
from vim_adapter.accounts import ACCOUNTS, VimAccountHandlers
from vim_adapter.connector import OpenStackConnector, Validation, VimConnector

SERVICE = vim.SERVICE
"""The service this adapter serves (`vim`)."""


async def run(
    *,
    transport: Transport,
    db_engine: AsyncEngine,
    stop: asyncio.Event | None = None,
    prefetch: int = 16,
    failpoint: str | None = None,
    coordinator_user: str | None = None,
    vault: str | None = None,
    metrics: ParticipantMetrics | None = None,
) -> None:
    """Serve the vim service's commands until `stop` is set or the task is cancelled.

    `vault` is the vault's private key: it opens the sealed passwords to log in to the VIM,
    and keeps every stored password sealed at rest.
    """
    keys = Vault(vault) if vault else None
    async with aiohttp.ClientSession() as http:
        connectors = {"openstack": OpenStackConnector(http, vault=keys)}
        handlers = VimAccountHandlers(db_engine, connectors, vault=keys)
        await handlers.create_tables()
        participant = Participant(
            SERVICE,
            transport=transport,
            db_engine=db_engine,
            handlers=[handlers],
            prefetch=prefetch,
            failpoint=failpoint,
            coordinator_user=coordinator_user,
            metrics=metrics,
        )
        await participant.run(stop)


__all__ = [
    "ACCOUNTS",
    "SERVICE",
    "OpenStackConnector",
    "Validation",
    "VimAccountHandlers",
    "VimConnector",
    "run",
]
