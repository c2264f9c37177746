"""CPU time and peak memory from /proc (Linux): per process and for the whole machine."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
"""The unit of the CPU times in /proc (USER_HZ)."""


def cpu_ticks(pid: int) -> int | None:
    """Return the CPU time (user + system) a process has used, in ticks; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def cpu_ticks_of(pids: Iterable[int]) -> dict[int, int]:
    """Return the CPU ticks of each of `pids` that still exists."""
    found = {pid: cpu_ticks(pid) for pid in pids}
    return {pid: ticks for pid, ticks in found.items() if ticks is not None}


def machine_busy_ticks() -> int | None:
    """Return the CPU time all CPUs spent not idle since boot, in ticks (None without /proc)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user).
    values = [int(v) for v in first[1:9]]
    return sum(values) - values[3] - values[4]


def peak_rss_kib(pid: int) -> int | None:
    """Return a process's peak resident set size (VmHWM) in KiB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def ticks_to_ms(ticks: float) -> float:
    """Convert /proc ticks to milliseconds."""
    return ticks * 1000.0 / TICKS_PER_SECOND


def rss_kib(pid: int) -> int | None:
    """Return a process's resident set size now (VmRSS) in KiB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
