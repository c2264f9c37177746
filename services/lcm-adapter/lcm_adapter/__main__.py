"""`python -m lcm_adapter`: serve the lcm service until SIGTERM, then exit 0.

Besides the common settings, `CONVECTION_LCM_FAULTS` (JSON, see `lcm_adapter.faults`)
injects failures for tests.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from convection import ParticipantMetrics
from convection.participant_main import ParticipantSettings, main
from convection.transport import Transport
from lcm_adapter import SERVICE, run
from lcm_adapter.faults import LcmFaults


class LcmSettings(ParticipantSettings):
    """The common adapter settings plus injected faults (`CONVECTION_LCM_FAULTS`)."""

    lcm_faults: LcmFaults = LcmFaults()


async def _run(
    settings: LcmSettings,
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
        metrics=metrics,
        faults=settings.lcm_faults,
    )


def entry() -> int:
    """Run the lcm-adapter process; return its exit code."""
    return main(SERVICE, LcmSettings, _run)


if __name__ == "__main__":
    sys.exit(entry())
