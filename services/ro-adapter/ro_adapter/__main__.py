"""`python -m ro_adapter`: serve the ro service until SIGTERM, then exit 0."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from convection import ParticipantMetrics
from convection.participant_main import ParticipantSettings, main
from convection.transport import Transport
from ro_adapter import SERVICE, run


async def _run(
    settings: ParticipantSettings,
    transport: Transport,
    engine: AsyncEngine,
    stop: asyncio.Event,
    metrics: ParticipantMetrics,
) -> None:
    await run(
        transport=transport,
        db_engine=engine,
        stop=stop,
        prefetch=settings.prefetch,
        failpoint=settings.failpoint,
        coordinator_user=settings.coordinator_user,
        vault=settings.vault_key,
        metrics=metrics,
    )


def entry() -> int:
    """Run the ro-adapter process; return its exit code."""
    return main(SERVICE, ParticipantSettings, _run)


if __name__ == "__main__":
    sys.exit(entry())
