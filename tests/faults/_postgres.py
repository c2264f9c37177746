"""A private PostgreSQL cluster; see `tests.faults.private` for the design."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tests.faults._procs import free_port
from tests.faults._server import PrivateServer, ServerFailed

# pg_ctl's shutdown modes are just signals to the postmaster; sending them ourselves keeps the
# postmaster our direct child, so its pid is known and its exit status observable.
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server binaries folder (/usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise ServerFailed("no PostgreSQL server under /usr/lib/postgresql/*/bin: install it")
    return found[-1].parent


class PrivatePostgres(PrivateServer):
    """A throw-away PostgreSQL cluster on 127.0.0.1 and a free port, owned by one test.

    Args:
        stat_statements: preload pg_stat_statements (then `CREATE EXTENSION
            pg_stat_statements` in a database to count statements).
        settings: extra postgresql.conf lines (name -> value, already quoted as SQL needs).
        port: a fixed port instead of a free one.
    """

    kind = "pg"
    os_user = "postgres"

    def __init__(
        self,
        *,
        stat_statements: bool = False,
        settings: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__()
        self.bin = postgres_bin()
        self.port = port or free_port()
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.settings: dict[str, str] = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            # Fault tests are about durability: say it explicitly even though it is the default.
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] '",
            **({"shared_preload_libraries": "'pg_stat_statements'"} if stat_statements else {}),
            **(settings or {}),
        }

    @property
    def ports(self) -> list[int]:
        """The TCP port of the cluster."""
        return [self.port]

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database, as the coordinator takes it."""
        return self.url_for("postgres")

    @property
    def dsn(self) -> str:
        """Plain libpq/asyncpg DSN of the `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        """SQLAlchemy (asyncpg) URL of `database` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        self.socket_dir.mkdir(mode=0o700)
        os.chown(self.socket_dir, *self._ids())
        self._run(
            [
                str(self.bin / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
            ],
            timeout=120,
        )
        conf = "".join(f"{name} = {value}\n" for name, value in self.settings.items())
        with (self.data / "postgresql.conf").open("a") as out:
            out.write("\n# convection private cluster\n" + conf)

    def _ids(self) -> tuple[int, int]:
        stat = self.root.stat()
        return stat.st_uid, stat.st_gid

    def start(self, timeout: float = 60.0) -> None:
        """Start the postmaster (running initdb the first time) and wait until TCP answers."""
        began = time.monotonic()
        if not self.data.exists():
            self._initdb()
        self._spawn([str(self.bin / "postgres"), "-D", str(self.data)], {"LANG": "C.UTF-8"})
        deadline = time.monotonic() + timeout
        # The unix socket is up before the TCP listener is; pg_isready over TCP checks the one
        # that the code under test uses, and "accepting connections" only after crash recovery.
        probe = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while subprocess.run([*probe, "-t", "1"], check=False).returncode != 0:
            if not self.running:
                raise self._fail(
                    f"postmaster exited with {self.process.returncode if self.process else '?'}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise self._fail(f"not ready after {timeout}s")
            time.sleep(0.05)
        self.start_seconds.append(time.monotonic() - began)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the cluster: "smart" (wait for clients), "fast" (roll back, checkpoint) or
        "immediate" (no checkpoint: the next start runs crash recovery)."""
        mode = mode or "fast"
        if mode not in _STOP_SIGNALS:
            raise ValueError(f"stop mode must be one of {sorted(_STOP_SIGNALS)} or 'kill'")
        if not self.running:
            return
        self.thaw()
        os.kill(self.pid, _STOP_SIGNALS[mode])
        self._wait_exit(timeout)

    def restart(self, mode: str = "immediate") -> None:
        """Stop with `mode` (default: immediate, i.e. with crash recovery) and start again."""
        super().restart(mode or "immediate")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql over TCP; return its unaligned, tuples-only output."""
        return self._run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ]
        ).strip()

    def create_database(self, name: str) -> str:
        """Create database `name`; return its SQLAlchemy (asyncpg) URL."""
        quoted = name.replace('"', '""')
        self.psql(f'CREATE DATABASE "{quoted}"')
        return self.url_for(name)
