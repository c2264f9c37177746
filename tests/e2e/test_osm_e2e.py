"""The OSM operations end to end: the coordinator, the three adapters and the VIM simulator each
in its own OS process, over the real RabbitMQ and PostgreSQL. Outcomes are checked in each
service's own state (the simulator's resources and ledger, the lcm-adapter's tables), not only
in the coordinator's.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from contracts import topology
from tests.integration.coord_support import migrate
from tests.unit.world import example

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
OVER_QUOTA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "sagas/examples/ns-instantiate-over-quota.json"
    ).read_text()
)
TERMINAL = ("completed", "compensated", "failed", "compensation_failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """Processes of one test, the broker client and the databases they share."""

    def __init__(self, amqp_url: str, pg_url: str, logs: Path) -> None:
        self.amqp_url, self.pg_url, self.logs = amqp_url, pg_url, logs
        self.sim = f"http://127.0.0.1:{_free_port()}"
        self.env = {
            **os.environ,
            "CONVECTION_AMQP_URL": amqp_url,
            "CONVECTION_DB_URL": pg_url,
            "CONVECTION_VIM_SIM_PORT": self.sim.rsplit(":", 1)[1],
            "CONVECTION_VIM_SIM_BOOT_SECONDS": "1.0",
            "CONVECTION_API_PORT": "0",
            "CONVECTION_TIMER_INTERVAL": "0.5",
        }
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.exchange: aio_pika.abc.AbstractExchange | None = None

    async def spawn(self, name: str, module: str, **env: str) -> asyncio.subprocess.Process:
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, env={**self.env, **env}, stdout=out, stderr=out
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    async def start(self, saga_type: str, saga_id: str, data: dict[str, Any]) -> None:
        assert self.exchange is not None
        body = {"type": "saga.start", "saga_type": saga_type, "saga_id": saga_id, "input": data}
        await self.exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=topology.START_ROUTING_KEY,
        )

    async def ended(self, saga_id: str, within: float = 90) -> dict[str, Any]:
        dsn = self.pg_url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(dsn)
        try:
            async with asyncio.timeout(within):
                while True:
                    row = await conn.fetchrow(
                        "SELECT status, error FROM sagas WHERE id = $1", saga_id
                    )
                    if row and row["status"] in TERMINAL:
                        error = json.loads(row["error"]) if row["error"] else None
                        return {"status": row["status"], "error": error}
                    await asyncio.sleep(0.3)
        finally:
            await conn.close()

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def sim_get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(self.sim + path) as resp:
            return await resp.json()

    async def sim_post(self, path: str, body: Any) -> Any:
        async with aiohttp.ClientSession() as http, http.post(self.sim + path, json=body) as resp:
            return await resp.json()


@asynccontextmanager
async def cluster(amqp_url: str, pg_url: str, logs: Path) -> AsyncIterator[Cluster]:
    await migrate(pg_url)
    c = Cluster(amqp_url, pg_url, logs)
    await asyncio.gather(
        c.spawn("vim_sim", "vim_sim"),
        c.spawn("coordinator", "coordinator"),
        c.spawn("vim_adapter", "vim_adapter"),
        c.spawn("lcm_adapter", "lcm_adapter"),
    )
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        for _ in range(240):
            try:
                await channel.get_queue(topology.COORDINATOR_SAGAS_QUEUE, ensure=True)
                await c.sim_get("/healthz")
                break
            except (aio_pika.exceptions.ChannelClosed, aiohttp.ClientError):
                if channel.is_closed:
                    channel = await connection.channel()
                await asyncio.sleep(0.5)
        else:
            pytest.fail("the services did not come up:\n" + c.log("coordinator")[-3000:])
        c.exchange = await channel.get_exchange(topology.SAGAS_EXCHANGE)
        yield c
    finally:
        await connection.close()
        for proc in c.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.gather(
            *(asyncio.wait_for(p.wait(), 30) for p in c.procs.values()), return_exceptions=True
        )


def _account(c: Cluster, vim_account_id: str, **creds: str) -> dict[str, Any]:
    data = example("vim-account.create", vim_account_id=vim_account_id)
    data["credentials"] = {**data["credentials"], "auth_url": f"{c.sim}/identity/v3", **creds}
    return data


@pytest.mark.timeout(400)
async def test_osm_sagas_across_processes(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    async with cluster(fresh_amqp_url, fresh_pg_url, tmp_path) as c:
        # An ro-adapter that dies (like SIGKILL) after its first effect, before the reply.
        first_ro = await c.spawn(
            "ro_killed", "ro_adapter", CONVECTION_FAILPOINT="participant.after_effect"
        )

        await c.start("vim-account.create", "acct", _account(c, "vim-osm-1"))
        assert (await c.ended("acct"))["status"] == "completed"

        bad = _account(c, "vim-bad", password="wrong")
        await c.start("vim-account.create", "acct-bad", bad)
        failed = await c.ended("acct-bad")
        assert failed["status"] == "failed"
        assert "The request you have made requires authentication." in failed["error"]["message"]

        await c.start("ns.instantiate", "inst", example("ns.instantiate"))
        assert await asyncio.wait_for(first_ro.wait(), 90) == 137
        # Restarted (twice: two instances share the queue from now on), the saga completes.
        await c.spawn("ro_a", "ro_adapter")
        await c.spawn("ro_b", "ro_adapter")
        assert (await c.ended("inst", within=120))["status"] == "completed"
        ledger = await c.sim_get("/admin/ledger?saga_id=inst")
        effects = [e["operation"] for e in ledger]
        assert effects.count("create_network") == 2, ledger  # one effect despite the kill
        assert effects.count("create_subnet") == 2, ledger
        assert effects.count("create_server") == 3, ledger
        steps = {
            r["name"]: r
            for r in await c.sql(
                "SELECT name, started_at, finished_at FROM saga_steps WHERE saga_id = 'inst'"
            )
        }
        lb, app = steps["vdus:vnf-lb"], steps["vdus:vnf-app"]
        # Both VNFs' VDUs were deploying at the same time.
        assert max(lb["started_at"], app["started_at"]) < min(lb["finished_at"], app["finished_at"])

        await c.start(
            "ns.instantiate",
            "big",
            json.loads(
                (
                    Path(__file__).resolve().parents[2]
                    / "sagas"
                    / "examples"
                    / "ns-instantiate-over-quota.json"
                ).read_text()
            ),
        )
        assert (await c.ended("big", within=120))["status"] == "compensated"
        left = await c.sim_get("/admin/resources?saga_id=big")
        assert left["servers"] == [] and left["networks"] == [], left
        records = await c.sql("SELECT ns_id FROM lcm_ns_records WHERE ns_id = 'ns-big-1'")
        assert records == []
        undone = [
            r["step"]
            for r in await c.sql(
                "SELECT step FROM saga_history WHERE saga_id = 'big' AND kind = "
                "'compensation.succeeded' ORDER BY id"
            )
        ]
        assert undone[-2:] == ["networks", "ns-record"]

        # Fifty sagas: both ro-adapter instances take their share of the commands.
        await c.sim_post(
            "/admin/projects",
            {
                "name": "load",
                "user": "load",
                "password": "load",
                "quota": {"cores": 1000, "instances": 1000},
            },
        )
        await c.start(
            "vim-account.create",
            "acct-load",
            _account(c, "vim-load", username="load", password="load", project="load"),
        )
        assert (await c.ended("acct-load"))["status"] == "completed"
        light = copy.deepcopy(example("ns.instantiate", vim_account_id="vim-load"))
        light["networks"] = light["networks"][:1]
        light["vnfs"] = [
            {
                **light["vnfs"][0],
                "vdus": [{"name": "lb", "image": "cirros-0.6", "flavor": "m1.tiny", "count": 1}],
            }
        ]
        for i in range(50):
            await c.start("ns.instantiate", f"load-{i}", {**light, "ns_id": f"ns-load-{i}"})
        results = [await c.ended(f"load-{i}", within=240) for i in range(50)]
        assert [r["status"] for r in results] == ["completed"] * 50
        for name in ("ro_a", "ro_b"):
            assert c.log(name).count("running ro.") > 0, f"{name} handled no command"
