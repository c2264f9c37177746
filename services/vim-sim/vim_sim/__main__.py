"""`python -m vim_sim`: serve until SIGTERM or SIGINT, then exit 0.

Settings come from the environment (see `vim_sim.settings`); invalid settings exit 2 with a
message naming each bad setting; a database it cannot reach while it starts exits 4 with one
line saying why (the codes of `convection.startup`, so a supervisor restarts it as it restarts
the adapters).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from sqlalchemy.engine import make_url

from convection.startup import StartupFailure, database_failure
from convection.tracing import setup_logging, setup_tracing
from vim_sim.errors import SettingsError
from vim_sim.runner import VimSimulator
from vim_sim.settings import VimSimSettings, load_settings

_log = logging.getLogger("vim_sim")


async def serve(settings: VimSimSettings) -> None:
    """Run a simulator until the process is asked to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator = VimSimulator(settings)
    try:
        # start() cleans up after itself when it fails.
        url = await simulator.start()
    except Exception as exc:
        failure = database_failure(exc, settings.db_url)
        if failure is None:
            raise
        raise failure from exc
    try:
        _log.info("vim-sim listening on %s (database %s)", url, _safe(settings.db_url))
        await stop.wait()
        _log.info("vim-sim stopping")
    finally:
        await simulator.stop()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def main() -> int:
    """Entry point; returns the process exit code."""
    setup_logging("INFO")
    try:
        settings = load_settings()
    except SettingsError as exc:
        _log.error("%s", exc)
        return 2
    tracing = setup_tracing("vim-sim")
    try:
        asyncio.run(serve(settings))
    except StartupFailure as exc:
        _log.error("vim-sim cannot start: %s", exc)
        return exc.code
    finally:
        # Spans still in the batch processor are lost unless the provider is shut down.
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
