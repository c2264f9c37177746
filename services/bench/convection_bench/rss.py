"""Resident memory over time: samples of each process's RSS while the throughput phase runs.

What `--rss-every` reports: with many sagas in flight (a slowed participant lets them pile
up), a coordinator that keeps no per-saga state in memory shows a flat line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from convection_bench import procfs


class RssSampler:
    """Samples the RSS of the given processes (label -> pid) every `every` seconds."""

    def __init__(
        self,
        pids: Mapping[str, int],
        every: float,
        note: Callable[[str], None] | None = None,
        offset: float = 0.0,
    ) -> None:
        self._pids = dict(pids)
        # Rounds sample one after another: each one's clock goes on from the last one's.
        self._offset = offset
        self._every = every
        self._note = note
        self._task: asyncio.Task[None] | None = None
        self.samples: list[dict[str, Any]] = []
        """One per tick: `t` (seconds of the phase so far) and `rss_mib` (label -> MiB)."""

    def _sample(self, started: float) -> None:
        found = {label: procfs.rss_kib(pid) for label, pid in self._pids.items()}
        rss = {label: kib / 1024 for label, kib in found.items() if kib is not None}
        t = round(self._offset + time.monotonic() - started, 1)
        self.samples.append({"t": t, "rss_mib": rss})
        if self._note is not None:
            # As it goes, so a run cut short still shows its curve.
            shown = ", ".join(f"{label} {mib:.1f} MiB" for label, mib in rss.items())
            self._note(f"rss at {self.samples[-1]['t']:.0f}s: {shown}")

    async def _run(self) -> None:
        started = time.monotonic()
        while True:
            self._sample(started)
            await asyncio.sleep(self._every)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            # wait(), not awaiting the task: a cancel of the caller (a signal stopping the
            # bench) must reach the caller, not be taken for the sampler's own.
            await asyncio.wait([self._task])
