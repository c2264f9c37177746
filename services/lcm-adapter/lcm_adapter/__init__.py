"""lcm-adapter: NS records, their operational state, and the day-1 configuration of VNFs.

Run it as a process with `python -m lcm_adapter` (see `convection.participant_main` for the
environment, plus `CONVECTION_LCM_FAULTS`), or embedded with `run(transport=..., db_engine=...)`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import lcm
from convection import Participant, ParticipantMetrics
from convection.transport import Transport
from lcm_adapter.faults import FaultInjector, LcmFaults
from lcm_adapter.handlers import LcmHandlers
from lcm_adapter.tables import LEDGER, NS_RECORDS, VNF_CONFIGS

SERVICE = lcm.SERVICE
"""The service this adapter serves (`lcm`)."""


async def run(
    *,
    transport: Transport,
    db_engine: AsyncEngine,
    stop: asyncio.Event | None = None,
    prefetch: int = 16,
    failpoint: str | None = None,
    coordinator_user: str | None = None,
    metrics: ParticipantMetrics | None = None,
    faults: LcmFaults | None = None,
    vault: str | None = None,
) -> None:
    """Serve the lcm service's commands until `stop` is set or the task is cancelled.

    It owns no secret: `vault` is accepted (and unused) so every adapter runs alike.
    """
    del vault
    handlers = LcmHandlers(db_engine, FaultInjector(faults))
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
    "LEDGER",
    "NS_RECORDS",
    "SERVICE",
    "VNF_CONFIGS",
    "LcmFaults",
    "LcmHandlers",
    "run",
]
