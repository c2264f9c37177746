"""Services as separate processes for end-to-end tests, from any Python environment.

A `Stack` spawns coordinators, participants and the VIM simulator with one set of
`CONVECTION_*` settings, publishes StartSaga from a plain AMQP client, and reads outcomes
from the coordinator's tables. `installed_venv` builds the workspace's distributions (and the
example package) as wheels and installs them into a fresh virtual environment, so a test
runs what a team would install, not the project's sources.
`url_as`, `rabbitmqctl` and `queue_depths` administer the machine's broker by hand.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import asyncpg

from contracts import topology
from tests.faults.private import ProcessGroup, Service, free_port

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("completed", "compensated", "failed", "compensation_failed", "cancelled")
# What a fresh environment installs: everything a coordinator with the OSM and order sagas,
# the vim-adapter, the VIM simulator and the order participants need.
WHEELS = (
    "convection_contracts",
    "convection_sagas",
    "convection",
    "convection_coordinator",
    "convection_vim_adapter",
    "convection_vim_sim",
    "convection_example_order",
)


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment with the project's wheels installed (no editable paths)."""

    root: Path

    @property
    def python(self) -> str:
        """Its interpreter."""
        return str(self.root / "bin" / "python")

    @property
    def convection(self) -> str:
        """Its `convection` command."""
        return str(self.root / "bin" / "convection")


def build_venv(workdir: Path) -> Venv:
    """Build the wheels and install them into `workdir/venv`; fail loudly without uv."""
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(uv).exists():
        raise RuntimeError("uv is needed to build the wheels: see .ci/run, which installs it")
    wheels = workdir / "wheels"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    def run(*args: str) -> None:
        done = subprocess.run(
            [uv, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            raise RuntimeError(f"uv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    run("build", "--all-packages", "--wheel", "-o", str(wheels), "-q")
    run("build", "examples/order-saga", "--wheel", "-o", str(wheels), "-q")
    venv = workdir / "venv"
    run("venv", "-q", "--python", sys.executable, str(venv))
    files = [str(next(wheels.glob(f"{name}-*.whl"))) for name in WHEELS]
    run("pip", "install", "-q", "--python", str(venv / "bin" / "python"), *files)
    return Venv(venv)


class Stack:
    """Processes of one test on one vhost and database, and a client for both."""

    def __init__(self, amqp_url: str, pg_url: str, logs: Path, *, python: str = sys.executable):
        self.amqp_url, self.pg_url, self.python = amqp_url, pg_url, python
        self.dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
        self.sim = f"http://127.0.0.1:{free_port()}"
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")
        } | {
            "CONVECTION_AMQP_URL": amqp_url,
            "CONVECTION_DB_URL": pg_url,
            "CONVECTION_VIM_SIM_PORT": self.sim.rsplit(":", 1)[1],
            "CONVECTION_VIM_SIM_BOOT_SECONDS": "0.3",
            "CONVECTION_API_PORT": "0",
            "CONVECTION_TIMER_INTERVAL": "0.3",
            "CONVECTION_OUTBOX_POLL_INTERVAL": "0.3",
        }
        self.logs = logs
        self.group = ProcessGroup(logs, self.env)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._sagas: aio_pika.abc.AbstractExchange | None = None

    def spawn(self, name: str, *argv: str, cwd: Path | None = None, **env: str) -> Service:
        """Start `argv` (a module after `-m`, or a full command) as service `name`."""
        command = list(argv) if argv[0].startswith("/") else [self.python, "-m", *argv]
        return self.group.spawn_argv(name, command, env=env, cwd=cwd)

    async def consumers(self, queue: str, at_least: int = 1, within: float = 60) -> None:
        """Wait until `queue` exists and has `at_least` consumers."""
        connection = self._connection
        assert connection is not None

        async def enough() -> bool:
            channel = await connection.channel()
            try:
                q = await channel.declare_queue(queue, passive=True)
                return (q.declaration_result.consumer_count or 0) >= at_least
            except aio_pika.exceptions.ChannelClosed:
                return False
            finally:
                if not channel.is_closed:
                    await channel.close()

        await self.until(f"{queue} has {at_least} consumer(s)", enough, within)

    async def start(self, saga_type: str, saga_id: str, data: Mapping[str, Any]) -> None:
        """Publish a StartSaga, as any service would."""
        assert self._sagas is not None
        body = {"type": "saga.start", "saga_type": saga_type, "saga_id": saga_id, "input": data}
        await self._sagas.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=topology.START_ROUTING_KEY,
        )

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one query on the test's database."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def status(self, saga_id: str) -> str | None:
        """The saga's status, or None before it exists."""
        rows = await self.sql("SELECT status FROM sagas WHERE id = $1", saga_id)
        return str(rows[0]["status"]) if rows else None

    async def until(
        self, what: str, check: Callable[[], Awaitable[bool]], within: float = 90
    ) -> None:
        """Wait until `await check()` is true; fail with the logs after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not await check():  # noqa: ASYNC110 - polling another process's state
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"not within {within}s: {what}\n{self.group.logs()}") from None

    async def ended(self, saga_id: str, within: float = 90) -> str:
        """Wait for the saga to end; return its status."""

        async def done() -> bool:
            return await self.status(saga_id) in TERMINAL

        await self.until(f"saga {saga_id} ends", done, within)
        status = await self.status(saga_id)
        assert status is not None
        return status

    async def sim_json(self, path: str) -> Any:
        """GET a path of the VIM simulator's API."""
        async with aiohttp.ClientSession() as http, http.get(self.sim + path) as resp:
            return await resp.json()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Stack]:
        """Connect the client; on the way out, stop every process."""
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        try:
            channel = await self._connection.channel()
            self._sagas = await channel.declare_exchange(
                topology.SAGAS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
            )
            yield self
        finally:
            await self._connection.close()
            await asyncio.to_thread(self.group.close)


# The machine's broker, administered by hand (users, permissions, queue depths).


def url_as(admin_url: str, user: str) -> str:
    """`admin_url` as broker user `user` (on the same host, port and vhost)."""
    # The setup's default password is the user name; the intruder's is too.
    parts = urlsplit(admin_url)
    return f"amqp://{user}:{user}@{parts.hostname}:{parts.port or 5672}{parts.path}"


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the machine's `rabbitmqctl`; with `check`, fail loudly on a non-zero exit."""
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def queue_depths(vhost: str) -> dict[str, int]:
    """Messages (ready and unacknowledged) in every queue of the vhost."""
    done = rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "messages")
    depths: dict[str, int] = {}
    for line in done.stdout.splitlines():
        name, _, messages = line.rpartition("\t")
        if name:
            depths[name] = int(messages)
    return depths
