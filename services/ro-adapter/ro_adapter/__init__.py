"""ro-adapter: networks and VDUs (VMs) of a Network Service on a VIM account.

Run it as a process with `python -m ro_adapter` (see `convection.participant_main` for the
environment), or embedded with `run(transport=..., db_engine=...)`.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import ro
from convection import Participant, ParticipantMetrics
from convection.sealing import Vault
from convection.transport import Transport
from ro_adapter.connector import OpenStackConnector, VimConnector, open_connector
from ro_adapter.handlers import ConnectorFactory, RoHandlers

SERVICE = ro.SERVICE
"""The service this adapter serves (`ro`)."""


async def run(
    *,
    transport: Transport,
    db_engine: AsyncEngine,
    stop: asyncio.Event | None = None,
    prefetch: int = 16,
    failpoint: str | None = None,
    coordinator_user: str | None = None,
    metrics: ParticipantMetrics | None = None,
    poll_interval: float = 0.5,
    vault: str | None = None,
) -> None:
    """Serve the ro service's commands until `stop` is set or the task is cancelled.

    `vault` is the vault's private key, which opens the sealed VIM passwords.
    """
    keys = Vault(vault) if vault else None
    async with aiohttp.ClientSession() as http:
        connect = functools.partial(open_connector, http, vault=keys)
        handlers = RoHandlers(connect, poll_interval=poll_interval)
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
    "SERVICE",
    "ConnectorFactory",
    "OpenStackConnector",
    "RoHandlers",
    "VimConnector",
    "open_connector",
    "run",
]
