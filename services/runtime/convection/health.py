"""Liveness for services without an HTTP port: a heartbeat file a container health check reads.

A service runs `Heartbeat(path, probe).run()` beside its work; it touches the file while the
probe (e.g. "the broker connection is up") says yes. `convection health --file PATH` exits 0
while the file is fresh, 1 when it is stale or missing, with a line that says which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

_log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool]]
"""An async check that says whether the service can do its work right now."""


class Heartbeat:
    """Touches `path` every `interval` seconds while `probe()` answers True."""

    def __init__(self, path: str | Path, probe: Probe, *, interval: float = 5.0) -> None:
        self._path = Path(path)
        self._probe = probe
        self._interval = interval

    async def run(self) -> None:
        """Beat until cancelled; the file is removed on the way out."""
        try:
            while True:
                try:
                    healthy = await self._probe()
                except Exception:  # a failing probe means unhealthy, not a dead heartbeat
                    _log.exception("health probe failed")
                    healthy = False
                if healthy:
                    self._path.touch()
                await asyncio.sleep(self._interval)
        finally:
            self._path.unlink(missing_ok=True)


def check(path: str | Path, max_age: float) -> tuple[bool, str]:
    """Return whether the heartbeat file is fresh, and a line saying why."""
    file = Path(path)
    try:
        age = time.time() - file.stat().st_mtime
    except FileNotFoundError:
        return False, f"{file} is missing: the service has not connected yet, or it stopped"
    if age > max_age:
        return False, f"{file} is {age:.0f}s old (limit {max_age:.0f}s): the service is stuck"
    return True, f"{file} is {age:.0f}s old"
