"""The VIM simulator in the embedded mode (`convection demo`), found by entry point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from vim_sim.runner import VimSimulator
from vim_sim.settings import VimSimSettings


@contextlib.asynccontextmanager
async def embedded(env: Any) -> AsyncIterator[str]:
    """Run the simulator on the demo's database and port; yield its base URL."""
    options = env.options
    settings = VimSimSettings(
        db_url=env.db_url,
        port=options.get("vim_sim_port", 0),
        boot_seconds=options.get("boot_seconds", 1.5),
    )
    async with VimSimulator(settings, engine=env.db_engine) as sim:
        yield sim.url
