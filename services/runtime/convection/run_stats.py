"""What a process did, for `convection bench`: counted only when the bench asks for it.

The bench sets `CONVECTION_BENCH_STATS_FILE` to a path per process; a coordinator or
participant started with it counts its database statements (each round trip the driver makes
for SQLAlchemy, an executemany counting once, and each of `convection.pg_driver`'s) and
transactions (commits and rollbacks), and writes them with its transport's message counts, as
one JSON object, when it stops:

    {"db_statements": n, "db_transactions": n, "messages_published": n, "messages_consumed": n}

A coordinator adds `outbox_polled`: the outbox rows its polling relay sent, not its hand-off.

Unset, nothing is listened to and nothing costs anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convection.transport import Transport

STATS_FILE_ENV = "CONVECTION_BENCH_STATS_FILE"
"""Environment variable naming the file a process writes its counts to when it stops."""


class RunStats:
    """Counts the statements and transactions of every engine of this process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.statements = 0
        self.transactions = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RunStats | None:
        """Return a RunStats listening to every engine, if the bench asked for one."""
        path = environ.get(STATS_FILE_ENV)
        if not path:
            return None
        stats = cls(path)
        stats.listen()
        return stats

    def listen(self) -> None:
        """Count on every SQLAlchemy engine of the process, those made later included."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        from convection import pg_driver

        # On the class, not one engine: a process may make several, and this is opt-in.
        event.listen(Engine, "before_cursor_execute", self._statement)
        # The message path's statements bypass SQLAlchemy's events.
        pg_driver.count_statements(self._statement)
        event.listen(Engine, "commit", self._transaction)
        event.listen(Engine, "rollback", self._transaction)

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _transaction(self, *_args: Any) -> None:
        self.transactions += 1

    def write(self, transport: Transport | None = None, **extra: int) -> None:
        """Write the counts, with the transport's messages published and consumed, and `extra`."""
        counts = {
            **extra,
            "db_statements": self.statements,
            "db_transactions": self.transactions,
            "messages_published": transport.published if transport is not None else 0,
            "messages_consumed": transport.consumed if transport is not None else 0,
        }
        # Atomically: the bench may read it the moment the process exits.
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(counts))
        partial.replace(self.path)
