"""`python -m coordinator`: run one coordinator replica until SIGTERM or SIGINT.

Configured by CONVECTION_* environment variables (see `coordinator.settings`). Exit codes:
0 after a graceful stop, 2 for invalid settings, 3 when the schema is behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from coordinator.schema import SchemaBehind
from coordinator.service import Coordinator
from coordinator.settings import CoordinatorSettings

logger = logging.getLogger("coordinator")


def load_settings() -> CoordinatorSettings:
    """Read the settings from the environment, or exit 2 with what is wrong."""
    try:
        return CoordinatorSettings()
    except ValidationError as exc:
        lines = [
            f"  CONVECTION_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        sys.stderr.write("invalid coordinator settings:\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None


async def serve(settings: CoordinatorSettings) -> None:
    """Run a coordinator until SIGTERM/SIGINT, then stop it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Coordinator(settings):
        await stop.wait()
        logger.info("signal received: stopping")


def run(settings: CoordinatorSettings) -> int:
    """Run the service; return the process exit code."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(settings))
    except SchemaBehind as exc:
        sys.stderr.write(f"{exc}\n")
        return 3
    return 0


def main() -> None:
    """Entry point of `python -m coordinator`."""
    raise SystemExit(run(load_settings()))


if __name__ == "__main__":
    main()
