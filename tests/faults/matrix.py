"""The world of one fault-matrix scenario: every service a separate process on private servers.

A module starts one private RabbitMQ node and one private PostgreSQL cluster (`servers` in
`tests/faults/conftest.py`) and one world on them (`module_world`): a fresh vhost with the
documented per-service broker users (`coordinator.broker_setup.definitions`, imported in one
`rabbitmqctl` call) and a fresh database. `World` (a `tests.e2e.stack.Stack`) runs two
coordinator replicas, the three real adapters (`convection adapter vim|ro|lcm`, each as its
own broker user) and the VIM simulator; starting them is most of a scenario's cost, so the
module's scenarios share them, each first bringing back what the last one broke (`ready`).
A scenario starts sagas, breaks something, waits for the sagas to end as it says, and runs
the checker (`tests.faults.checker`) over everything, printing and asserting its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika

from contracts import topology
from coordinator.broker_setup import COORDINATOR_USER, definitions, service_user
from tests.e2e.stack import TERMINAL, Stack
from tests.faults.checker import CheckReport, Sources, check
from tests.faults.private import PrivatePostgres, PrivateRabbit
from tests.integration.coord_support import migrate
from tests.unit.world import example

SERVICES = ("vim", "ro", "lcm")
"""The participant services of the OSM sagas."""
FAILPOINT_EXIT = 137
"""How a process whose failpoint fired exits."""
ACCOUNT = "vim-osm-1"
"""The VIM account every scenario registers first."""
# Room for every VM a scenario starts: a quota failure would be a business failure that the
# scenario did not ask for.
_PROJECTS = json.dumps(
    [
        {"name": "admin", "user": "admin", "password": "admin"},
        {
            "name": "osm",
            "user": "osm",
            "password": "osm",
            "quota": {"cores": 100000, "instances": 100000},
        },
    ]
)

FIGURES: list[tuple[str, str]] = []
"""Each checked scenario's test id and checker figures, for the closing report."""


@asynccontextmanager
async def world(servers: tuple[PrivateRabbit, PrivatePostgres], logs: Path) -> AsyncIterator[World]:
    """A fresh vhost and database on the module's servers, and a `World` on them."""
    rabbit, pg = servers
    # A scenario that failed mid-outage must not take the next one down with it.
    await asyncio.to_thread(rabbit.ensure_running)
    await asyncio.to_thread(pg.ensure_running)
    name = f"m-{secrets.token_hex(4)}"
    await asyncio.to_thread(_broker_users, rabbit, name)
    db_url = await asyncio.to_thread(pg.create_database, name)
    await migrate(db_url)
    w = World(rabbit, pg, name, db_url, logs)
    async with w.running():
        try:
            yield w
        finally:
            await w.unsupervise()


def _broker_users(rabbit: PrivateRabbit, vhost: str) -> None:
    """The documented users and grants on `vhost` (and guest for the test's own client)."""
    defs = definitions(SERVICES, vhost=vhost)
    defs["permissions"].append(
        {"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
    )
    path = rabbit.root / f"definitions-{vhost}.json"
    path.write_text(json.dumps(defs))
    owner = rabbit.root.stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    rabbit.rabbitmqctl("import_definitions", str(path))


def ns(ns_id: str, *, fail: bool = False) -> dict[str, Any]:
    """An ns.instantiate input; `fail` adds a VDU of an unknown image (a business failure)."""
    data = example("ns.instantiate", ns_id=ns_id, vim_account_id=ACCOUNT)
    if fail:
        data = copy.deepcopy(data)
        bad = {"name": "bad", "image": "no-such-image", "flavor": "m1.small", "count": 1}
        data["vnfs"][0]["vdus"].append(bad)
    return data


class World(Stack):
    """Coordinators, adapters and the VIM simulator of one scenario, and what they did."""

    def __init__(
        self, rabbit: PrivateRabbit, pg: PrivatePostgres, vhost: str, db_url: str, logs: Path
    ) -> None:
        super().__init__(rabbit.url_for("guest", "guest", vhost), db_url, logs)
        self.rabbit, self.pg, self.vhost = rabbit, pg, vhost
        extra = {
            "CONVECTION_VIM_SIM_PROJECTS": _PROJECTS,
            "CONVECTION_VIM_SIM_BOOT_SECONDS": "0.5",
            "CONVECTION_SERVICE_USERS": ",".join(f"{s}={service_user(s)}" for s in SERVICES),
            "CONVECTION_COORDINATOR_USER": COORDINATOR_USER,
            "CONVECTION_LOG_LEVEL": "INFO",
        }
        self.env |= extra
        self.group.base_env |= extra
        self.started: list[str] = []
        self.fired: dict[str, int] = {}
        self._supervisor: asyncio.Task[None] | None = None

    def supervise(self) -> None:
        """Restart, without its failpoint, every service a fired failpoint killed (137)."""

        async def loop() -> None:
            while True:
                for service in self.group:
                    if (
                        service.returncode == FAILPOINT_EXIT
                        and "CONVECTION_FAILPOINT" in service.env
                    ):
                        del service.env["CONVECTION_FAILPOINT"]
                        self.fired[service.name] = self.fired.get(service.name, 0) + 1
                        service.start()
                await asyncio.sleep(0.3)

        self._supervisor = asyncio.create_task(loop())

    async def unsupervise(self) -> None:
        """Stop restarting services."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    def url_as(self, user: str) -> str:
        """The AMQP URL of broker user `user` on this scenario's vhost (password = name)."""
        return self.rabbit.url_for(user, user, self.vhost)

    def coordinator(self, name: str, **env: str) -> None:
        """Start a coordinator replica as the coordinator's broker user."""
        self.spawn(name, "coordinator", CONVECTION_AMQP_URL=self.url_as(COORDINATOR_USER), **env)

    def adapter(self, service: str, name: str | None = None, **env: str) -> None:
        """Start the real adapter of `service` as that service's broker user."""
        self.spawn(
            name or f"{service}_adapter",
            "convection",
            "adapter",
            service,
            CONVECTION_AMQP_URL=self.url_as(service_user(service)),
            CONVECTION_DECLARE_TOPOLOGY="false",
            **env,
        )

    async def up(self, *, replicas: int = 2, adapters: bool = True, **coordinator_env: str) -> None:
        """Start the simulator, `replicas` coordinators and (unless not) the adapters."""
        self.spawn("vim_sim", "vim_sim")
        for index in range(1, replicas + 1):
            self.coordinator(f"c{index}", **(coordinator_env if index == 1 else {}))
        await self.consumers(topology.COORDINATOR_SAGAS_QUEUE, at_least=replicas, within=120)
        if adapters:
            await self.adapters_up()
        await self.until("the VIM simulator answers", self._sim_up, within=60)

    async def ready(self) -> None:
        """Bring back whatever an earlier scenario left down: servers, frozen or dead services."""
        await asyncio.to_thread(self.rabbit.ensure_running)
        await asyncio.to_thread(self.pg.ensure_running)
        for service in self.group:
            if service.running:
                service.thaw()
            else:
                service.env.pop("CONVECTION_FAILPOINT", None)
                service.start()
        replicas = sum(1 for s in self.group if s.name[0] == "c" and s.name[1:].isdigit())
        await self.consumers(topology.COORDINATOR_SAGAS_QUEUE, at_least=replicas, within=120)
        for service in SERVICES:
            await self.consumers(topology.command_queue(service), within=120)
        await self.until("the VIM simulator answers", self._sim_up, within=60)

    async def restart_with(self, name: str, **env: str) -> None:
        """Restart service `name` with `env` added to its environment (e.g. a failpoint)."""
        service = self.group[name]
        await asyncio.to_thread(service.terminate)
        service.env |= env
        service.start()
        # Back at work before the scenario starts sagas, or the others do all of it meanwhile.
        text = "coordinator started" if name[0] == "c" and name[1:].isdigit() else " consuming ("
        await service.wait_for_log(text, within=120)
        await self.ready()

    async def adapters_up(self, **env: str) -> None:
        """Start the three adapters and wait until each consumes its queue."""
        for service in SERVICES:
            self.adapter(service, **env)
        for service in SERVICES:
            await self.consumers(topology.command_queue(service), within=120)

    async def _sim_up(self) -> bool:
        try:
            return bool((await self.sim_json("/healthz"))["status"] == "ok")
        except (TimeoutError, OSError, ValueError, KeyError):
            return False

    async def begin(self, saga_type: str, saga_id: str, data: Mapping[str, Any]) -> None:
        """Start a saga and remember it for the checker's `lost` figure."""
        self.started.append(saga_id)
        await self.start(saga_type, saga_id, data)

    async def register_account(self) -> None:
        """Register the VIM account the NS sagas use, and wait until it is."""
        data = example("vim-account.create", vim_account_id=ACCOUNT)
        data["credentials"]["auth_url"] = f"{self.sim}/identity/v3"
        await self.begin("vim-account.create", "account", data)
        assert await self.ended("account", within=120) == "completed", self.group.logs()

    async def nss(self, prefix: str, count: int, *, failing: Iterable[int] = ()) -> dict[str, str]:
        """Start `count` ns.instantiate sagas; return what each must end as."""
        bad = set(failing)
        expect = {}
        for index in range(count):
            saga_id = f"{prefix}-{index}"
            await self.begin("ns.instantiate", saga_id, ns(f"ns-{saga_id}", fail=index in bad))
            expect[saga_id] = "compensated" if index in bad else "completed"
        return expect

    async def statuses(self, ids: Iterable[str]) -> dict[str, str]:
        """The current status of each saga that has a row."""
        rows = await self.sql("SELECT id, status FROM sagas WHERE id = ANY($1::text[])", list(ids))
        return {r["id"]: r["status"] for r in rows}

    async def settle(self, ids: Iterable[str], within: float = 300) -> dict[str, str]:
        """Wait until every saga in `ids` is terminal; return their statuses."""
        wanted = list(ids)
        seen: dict[str, str] = {}

        async def done() -> bool:
            nonlocal seen
            seen = await self.statuses(wanted)
            return len(seen) == len(wanted) and all(s in TERMINAL for s in seen.values())

        try:
            await self.until(f"{len(wanted)} sagas end", done, within)
        except AssertionError as exc:
            open_ = {k: v for k, v in seen.items() if v not in TERMINAL}
            missing = len(wanted) - len(seen)
            raise AssertionError(f"{missing} sagas missing, not ended: {open_}\n{exc}") from None
        return seen

    async def checked(
        self,
        expect: Mapping[str, str],
        *,
        within: float = 300,
        quiet: float = 3.0,
        dead_letters: bool = False,
    ) -> CheckReport:
        """Wait for the sagas to end as `expect` says, let things settle, run the checker.

        Prints the checker's figures (a CI log shows them) and fails, with the figures in
        the message, unless every saga ended as expected and every figure is zero. Unless
        `dead_letters` says the scenario sends bad messages, nothing may have been
        dead-lettered at all: under an outage a valid message dead-lettered with a reason
        (`handler_crashed`, `delivery_limit`) is as lost as one without.
        """
        ended = await self.settle(expect, within)
        # Unsent outbox rows and dead letters settle after the sagas' last transactions.
        await self.until("the outbox drains", self._outbox_empty, within=120)
        await asyncio.sleep(quiet)
        report = await check(
            Sources(db_dsn=self.pg_url, sim_url=self.sim, amqp_url=self.amqp_url),
            started=self.started,
        )
        print(f"\n{report.render()}")
        FIGURES.append((os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0], report.render()))
        wrong = {k: (ended.get(k), v) for k, v in expect.items() if ended.get(k) != v}
        assert not wrong, f"sagas ended otherwise (got, expected): {wrong}\n{report.render()}"
        report.assert_clean()
        if not dead_letters:
            collected = report.info.get("dead_letters")
            assert not collected, f"valid messages dead-lettered: {collected}\n{report.render()}"
        return report

    async def _outbox_empty(self) -> bool:
        rows = await self.sql("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
        return int(rows[0]["n"]) == 0

    async def publish_as(
        self, user: str, exchange: str, routing_key: str, body: bytes, **props: Any
    ) -> None:
        """Publish one confirmed message as broker user `user` (its `user_id` set)."""
        connection = await aio_pika.connect(self.url_as(user), timeout=30)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            target = await channel.get_exchange(exchange, ensure=False)
            message = aio_pika.Message(body, user_id=user, **props)
            await target.publish(message, routing_key)

    async def in_flight(self, prefix: str, steps: int, within: float = 180) -> None:
        """Wait until `steps` steps of the sagas named `prefix-*` succeeded; print how many of
        them are still open (the fault that follows hits work in flight)."""
        like = f"{prefix}-%"

        async def far_enough() -> bool:
            rows = await self.sql(
                "SELECT count(*) AS n FROM saga_steps WHERE status = 'succeeded'"
                " AND saga_id LIKE $1",
                like,
            )
            return int(rows[0]["n"]) >= steps

        await self.until(f"{steps} steps of {prefix} succeeded", far_enough, within)
        rows = await self.sql(
            "SELECT count(*) AS n FROM sagas WHERE id LIKE $1 AND NOT (status = ANY($2::text[]))",
            like,
            list(TERMINAL),
        )
        print(f"\n{prefix}: the fault comes with {rows[0]['n']} sagas in flight")

    async def wait_step(self, saga_id: str, name: str, status: str, within: float = 120) -> None:
        """Wait until step `name` of a saga has `status`."""

        async def there() -> bool:
            rows = await self.sql(
                "SELECT status FROM saga_steps WHERE saga_id = $1 AND name = $2", saga_id, name
            )
            return bool(rows) and rows[0]["status"] == status

        await self.until(f"{saga_id}/{name} is {status}", there, within)


def elapsed(since: float) -> str:
    """Seconds since `since` (time.monotonic), for scenario logs."""
    return f"{time.monotonic() - since:.1f}s"
