"""The stats file: how a process under benchmark reports what it did, when it gets SIGTERM.

The harness sets `CONVECTION_BENCH_STATS_FILE` to a path per process. On SIGTERM the process
finishes its work in flight and writes one JSON object there before it exits:

    {"db_statements": n, "db_transactions": n, "messages_published": n, "messages_consumed": n}

(and a coordinator's `outbox_polled`).

Counts are for the process's whole life. A process that does not write the file simply has
no such figures in the report ("n/a"); nothing else depends on it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from convection.run_stats import STATS_FILE_ENV

__all__ = ["STATS_FILE_ENV", "Counters"]


@dataclass
class Counters:
    """What a process did: database statements and transactions, messages out and in."""

    db_statements: int = 0
    db_transactions: int = 0
    messages_published: int = 0
    messages_consumed: int = 0
    outbox_polled: int = 0
    """A coordinator's outbox rows sent by its polling relay, not handed off after the commit."""

    def write(self, path: str | Path) -> None:
        """Write the counters to `path` atomically (the harness may read it at any moment)."""
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(asdict(self)))
        partial.replace(target)

    def write_if_asked(self) -> None:
        """Write the counters where `CONVECTION_BENCH_STATS_FILE` says, if it is set."""
        path = os.environ.get(STATS_FILE_ENV)
        if path:
            self.write(path)

    @classmethod
    def read(cls, path: str | Path) -> Counters | None:
        """Read a stats file; None if it is missing or not a stats file."""
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in raw.items() if k in known})

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counters)))
