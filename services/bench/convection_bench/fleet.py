"""The processes of one system: started together, watched, and always stopped.

Each process gets its own session, so a Ctrl-C in the terminal reaches only the harness,
which then stops them in order (SIGTERM, so each writes its stats file; SIGKILL if it hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from convection_bench.stats import STATS_FILE_ENV, Counters
from convection_bench.system import BenchError, ProcessSpec

STOP_TIMEOUT = 20.0
"""Seconds a process has to exit after SIGTERM before it gets SIGKILL."""


@dataclass
class Member:
    """One started process: its spec, its number within its role, its log and stats file."""

    spec: ProcessSpec
    number: int
    process: asyncio.subprocess.Process
    log: Path
    stats_file: Path

    @property
    def label(self) -> str:
        """How the report names it, e.g. `participant 2`."""
        return f"{self.spec.role} {self.number}"

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        """Return the last lines of its log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stats(self) -> Counters | None:
        """Return the counters it wrote on SIGTERM, if it did."""
        return Counters.read(self.stats_file)


class Fleet:
    """Starts a system's processes, tells when one died, and stops them all."""

    def __init__(self, specs: Sequence[ProcessSpec], workdir: Path) -> None:
        self._specs = specs
        self._workdir = workdir
        self.members: list[Member] = []
        self.stopping = False

    async def start(self) -> None:
        """Start every process, with its output in `<workdir>/<role>-<n>.log`."""
        numbers: Counter[str] = Counter()
        for spec in self._specs:
            numbers[spec.role] += 1
            name = f"{spec.role}-{numbers[spec.role]}"
            log, stats = self._workdir / f"{name}.log", self._workdir / f"{name}.stats.json"
            env = {**os.environ, **spec.env, STATS_FILE_ENV: str(stats)}
            with log.open("wb") as out:
                try:
                    process = await asyncio.create_subprocess_exec(
                        *spec.argv,
                        env=env,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=out,
                        stderr=out,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise BenchError(f"cannot start {' '.join(spec.argv)}: {exc}") from exc
            self.members.append(Member(spec, numbers[spec.role], process, log, stats))

    def dead(self) -> Member | None:
        """Return a process that has exited although nobody stopped it, if any."""
        if self.stopping:
            return None
        return next((m for m in self.members if m.process.returncode is not None), None)

    async def stop(self) -> None:
        """SIGTERM every process, wait for each, SIGKILL those that do not exit in time."""
        self.stopping = True
        for member in self.members:
            if member.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    member.process.send_signal(signal.SIGTERM)
        for member in self.members:
            try:
                await asyncio.wait_for(member.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    member.process.kill()
                await member.process.wait()
