"""The system under chaos: private servers, per-process broker users, and every service."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import tests.environ  # noqa: F401  (the session's vault keys, before the children copy os.environ)
from contracts import topology
from coordinator.broker_setup import CLIENT_USER, COORDINATOR_USER, grants, service_user
from tests.e2e.stack import Stack
from tests.faults.private import PrivatePostgres, PrivateRabbit, PrivateServer, Service
from tests.integration.coord_support import migrate

SERVICES = ("vim", "ro", "lcm")
COORDINATORS = ("coordinator-1", "coordinator-2")
VIM_SIM = "vim_sim"
DATABASE = "convection_chaos"
# An adapter that starts while its broker or database is down stops at once with these codes
# (convection.startup): by design, so the supervisor starts it again rather than failing the run.
STARTUP_UNAVAILABLE = frozenset({4, 5})


def _url(rabbit: PrivateRabbit, user: str) -> str:
    # `convection broker setup` gives every user its own name as password unless told otherwise.
    return f"amqp://{quote(user)}:{quote(user)}@127.0.0.1:{rabbit.port}/%2F"


@dataclass
class Tally:
    """What the monkey and the supervisor did, for the summary."""

    kills: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    exits: list[tuple[str, int | None]] = field(default_factory=list)
    """Services found dead that nobody killed: (name, exit status)."""

    @property
    def crashes(self) -> list[tuple[str, int | None]]:
        """Exits that are not an adapter refusing to start while a dependency was down."""
        return [(n, code) for n, code in self.exits if code not in STARTUP_UNAVAILABLE]


class ChaosCluster:
    """Two coordinators, the three adapters and the VIM simulator on private servers."""

    def __init__(self, workdir: Path, *, replicas: int = 1, log_level: str = "INFO") -> None:
        self.workdir = workdir
        self.log_level = log_level
        self.replicas = replicas
        self.adapters = {
            service: [
                f"{service}_adapter" + (f"-{n}" if replicas > 1 else "")
                for n in range(1, replicas + 1)
            ]
            for service in SERVICES
        }
        adapters = [name for names in self.adapters.values() for name in names]
        # What the monkey may SIGKILL: every process of the system but the servers.
        self.targets: tuple[str, ...] = (*COORDINATORS, *adapters, VIM_SIM)
        self.pg = PrivatePostgres(settings={"max_connections": "300"})
        self.rabbit = PrivateRabbit()
        self.tally = Tally()
        self._down: set[str] = set()
        self._servers_down = 0
        self._lock = asyncio.Lock()
        self.stack: Stack | None = None

    @property
    def client_url(self) -> str:
        """AMQP URL of the client user, who may start sagas and nothing else."""
        return _url(self.rabbit, CLIENT_USER)

    def service(self, name: str) -> Service:
        """One service of the system by name (see `targets`)."""
        assert self.stack is not None
        return self.stack.group[name]

    def _setup_broker_users(self) -> None:
        # The documented grants (docs/security.md), applied to the private node's "/".
        for grant in grants(SERVICES):
            self.rabbit.add_user(grant.user, grant.user)
            self.rabbit.set_permissions("/", grant.user, grant.configure, grant.write, grant.read)

    async def _start_servers(self) -> str:
        await asyncio.gather(self.pg.astart(), self.rabbit.astart())
        await asyncio.to_thread(self._setup_broker_users)
        url = await asyncio.to_thread(self.pg.create_database, DATABASE)
        await migrate(url)
        return url

    def _spawn_all(self, stack: Stack) -> None:
        level = {"CONVECTION_LOG_LEVEL": self.log_level}
        users = ",".join(f"{s}={service_user(s)}" for s in SERVICES)
        stack.spawn(VIM_SIM, "vim_sim", CONVECTION_VIM_SIM_BOOT_SECONDS="0.5")
        for name in COORDINATORS:
            stack.spawn(
                name,
                "coordinator",
                CONVECTION_AMQP_URL=_url(self.rabbit, COORDINATOR_USER),
                CONVECTION_SERVICE_USERS=users,
                **level,
            )

    def _spawn_adapters(self, stack: Stack) -> None:
        for service, names in self.adapters.items():
            for name in names:
                self._spawn_adapter(stack, service, name)

    def _spawn_adapter(self, stack: Stack, service: str, name: str) -> None:
        stack.spawn(
            name,
            f"{service}_adapter",
            CONVECTION_AMQP_URL=_url(self.rabbit, service_user(service)),
            CONVECTION_COORDINATOR_USER=COORDINATOR_USER,
            CONVECTION_DECLARE_TOPOLOGY="false",
            CONVECTION_LOG_LEVEL=self.log_level,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ChaosCluster]:
        """Start servers and services; stop and remove everything on the way out."""
        try:
            db_url = await self._start_servers()
            stack = Stack(self.rabbit.url, db_url, self.workdir / "logs")
            async with stack.running():
                self.stack = stack
                self._spawn_all(stack)
                # The adapters only check the topology, which the coordinators declare.
                await stack.consumers(topology.COORDINATOR_SAGAS_QUEUE, at_least=2, within=120)
                self._spawn_adapters(stack)
                for service in SERVICES:
                    queue = topology.command_queue(service)
                    await stack.consumers(queue, at_least=self.replicas, within=120)
                await stack.until("the VIM simulator answers", self._sim_up, within=60)
                yield self
        finally:
            await asyncio.to_thread(self._close_servers)

    def _close_servers(self) -> None:
        for server in (self.rabbit, self.pg):
            with contextlib.suppress(Exception):
                server.close()

    async def _sim_up(self) -> bool:
        assert self.stack is not None
        try:
            await self.stack.sim_json("/healthz")
        except Exception:  # down, or still booting: ask again
            return False
        return True

    async def kill(self, name: str) -> None:
        """SIGKILL service `name` with all its children; it stays down until `revive`."""
        async with self._lock:
            self._down.add(name)
            await asyncio.to_thread(self.service(name).kill)
            self.tally.kills[name] += 1

    async def revive(self, name: str) -> None:
        """Start service `name` again with the same command and environment."""
        async with self._lock:
            service = self.service(name)
            if not service.running:
                service.start()
                self.tally.restarts[name] += 1
            self._down.discard(name)

    async def restart_broker(self, mode: str = "") -> tuple[float, float]:
        """Stop and start the RabbitMQ node; return the seconds stopping and starting took."""
        return await self._restart(self.rabbit, "broker", mode)

    async def restart_database(self, mode: str = "immediate") -> tuple[float, float]:
        """Stop (default: immediate, crash recovery) and start PostgreSQL; seconds as above."""
        return await self._restart(self.pg, "database", mode)

    async def _restart(self, server: PrivateServer, kind: str, mode: str) -> tuple[float, float]:
        self._servers_down += 1
        try:
            began = time.monotonic()
            await server.astop(mode)
            stopped = time.monotonic()
            await server.astart()
            self.tally.restarts[kind] += 1
            return stopped - began, time.monotonic() - stopped
        finally:
            self._servers_down -= 1

    async def supervise(self) -> None:
        """Start again any service that died on its own (recording it), as systemd would.

        Not while a server is down: a service would only stop again at start (see
        `STARTUP_UNAVAILABLE`); it is started once the server is back.
        """
        if self._servers_down:
            return
        async with self._lock:
            for name in self.targets:
                service = self.service(name)
                if name not in self._down and not service.running:
                    self.tally.exits.append((name, service.returncode))
                    service.start()

    async def revive_all(self) -> None:
        """Bring every service up (the end of the chaos window)."""
        await self.supervise()
        for name in self.targets:
            await self.revive(name)
