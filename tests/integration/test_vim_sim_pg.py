"""The VIM simulator on the real PostgreSQL: the behaviours where the database matters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from convection.db import make_engine
from vim_sim import VimSimSettings, VimSimulator, create_app

pytestmark = [pytest.mark.postgres]

Json = Any


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sim:
    """A simulator on PostgreSQL behind an aiohttp test client; each test gets its own project."""

    def __init__(self, client: TestClient[Any, Any], clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    async def project(self, cores: int = 20, instances: int = 10) -> str:
        """Add a fresh project (user and password = its name) and return a token for it."""
        name = f"p-{uuid.uuid4().hex[:8]}"
        spec = {
            "name": name,
            "user": name,
            "password": name,
            "quota": {"cores": cores, "instances": instances},
        }
        await self.call("POST", "/admin/projects", None, spec, status=201)
        auth = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": name, "password": name}},
                },
                "scope": {"project": {"name": name}},
            }
        }
        response = await self.client.post("/identity/v3/auth/tokens", json=auth)
        assert response.status == 201, await response.text()
        return response.headers["X-Subject-Token"]

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Json = None,
        *,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> Json:
        sent = dict(headers or {})
        if token is not None:
            sent["X-Auth-Token"] = token
        response = await self.client.request(method, path, json=body, headers=sent)
        text = await response.text()
        assert response.status == status, text
        return await response.json() if text else None

    async def server(
        self,
        token: str,
        flavor: str = "m1.tiny",
        networks: list[str] | None = None,
        *,
        status: int = 202,
        headers: dict[str, str] | None = None,
    ) -> Json:
        body = {
            "server": {
                "name": "vdu",
                "imageRef": "debian-12",
                "flavorRef": flavor,
                "networks": [{"uuid": n} for n in networks or []],
            }
        }
        return await self.call(
            "POST", "/compute/v2.1/servers", token, body, status=status, headers=headers
        )


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(pg_url, pool_size=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sim(engine: AsyncEngine, pg_url: str) -> AsyncIterator[Sim]:
    clock = ManualClock()
    settings = VimSimSettings(db_url=pg_url, port=0, boot_seconds=2.0)
    async with TestClient(TestServer(create_app(settings, engine, clock=clock))) as client:
        yield Sim(client, clock)


def saga(saga_id: str, action: str = "invoke", key: str | None = None) -> dict[str, str]:
    headers = {
        "X-Convection-Saga-Id": saga_id,
        "X-Convection-Step": "deploy",
        "X-Convection-Action": action,
    }
    return headers | ({"X-Idempotency-Key": key} if key else {})


async def test_network_server_lifecycle_and_ledger(sim: Sim) -> None:
    token, saga_id = await sim.project(), uuid.uuid4().hex
    body = {"network": {"name": "mgmt", "tags": ["osm"]}}
    network = await sim.call(
        "POST", "/network/v2.0/networks", token, body, status=201, headers=saga(saga_id)
    )
    network_id = network["network"]["id"]
    subnet = {"subnet": {"network_id": network_id, "cidr": "10.9.0.0/24", "ip_version": 4}}
    await sim.call(
        "POST", "/network/v2.0/subnets", token, subnet, status=201, headers=saga(saga_id)
    )
    server_id = (await sim.server(token, networks=[network_id], headers=saga(saga_id)))["server"][
        "id"
    ]

    shown = (await sim.call("GET", f"/compute/v2.1/servers/{server_id}", token, status=200))[
        "server"
    ]
    assert shown["status"] == "BUILD"
    assert shown["addresses"]["mgmt"][0]["addr"] == "10.9.0.2"
    sim.clock.advance(2)
    listed = await sim.call(
        "GET",
        "/compute/v2.1/servers/detail?metadata.convection_saga_id=" + saga_id,
        token,
        status=200,
    )
    assert [(s["id"], s["status"]) for s in listed["servers"]] == [(server_id, "ACTIVE")]
    tagged = await sim.call("GET", "/network/v2.0/networks?tags=osm", token, status=200)
    assert [n["id"] for n in tagged["networks"]] == [network_id]

    await sim.call("DELETE", f"/network/v2.0/networks/{network_id}", token, status=409)
    undo = saga(saga_id, "compensate")
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", token, status=204, headers=undo)
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", token, status=404, headers=undo)
    await sim.call(
        "DELETE", f"/network/v2.0/networks/{network_id}", token, status=204, headers=undo
    )
    reply = await sim.call("GET", f"/network/v2.0/networks/{network_id}", token, status=404)
    assert reply["NeutronError"]["type"] == "NetworkNotFound"

    ledger = await sim.call("GET", f"/admin/ledger?saga_id={saga_id}", None, status=200)
    assert [(row["operation"], row["action"]) for row in ledger] == [
        ("create_network", "invoke"),
        ("create_subnet", "invoke"),
        ("create_server", "invoke"),
        ("delete_server", "compensate"),
        ("delete_network", "compensate"),
    ]
    live = await sim.call("GET", f"/admin/resources?saga_id={saga_id}", None, status=200)
    assert live == {"servers": [], "networks": [], "subnets": []}


async def test_tokens_expire(sim: Sim) -> None:
    token = await sim.project()
    await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    sim.clock.advance(3601)
    await sim.call("GET", "/compute/v2.1/servers", token, status=401)


async def test_cores_quota_message(sim: Sim) -> None:
    token = await sim.project(cores=20)
    for flavor in ("m1.xlarge", "m1.xlarge", "m1.medium"):
        await sim.server(token, flavor)
    reply = await sim.server(token, "m1.large", status=403)
    assert reply == {
        "forbidden": {
            "code": 403,
            "message": "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores",
        }
    }
    reply = await sim.server(token, "m9.huge", status=400)
    assert reply["badRequest"]["message"] == "Flavor m9.huge could not be found."


async def test_twenty_concurrent_creates_against_ten_instances(sim: Sim) -> None:
    token = await sim.project(cores=100, instances=10)
    body = {"server": {"name": "vm", "imageRef": "cirros-0.6", "flavorRef": "m1.tiny"}}

    async def create(index: int) -> int:
        headers = {"X-Auth-Token": token} | saga("burst", key=f"k-{index}")
        response = await sim.client.post("/compute/v2.1/servers", json=body, headers=headers)
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(create(i) for i in range(20)))
    assert sorted(statuses) == [202] * 10 + [403] * 10
    servers = await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    assert len(servers["servers"]) == 10


async def test_concurrent_replays_of_one_key_have_one_effect(sim: Sim) -> None:
    token, saga_id = await sim.project(), uuid.uuid4().hex
    replies = await asyncio.gather(
        *(sim.server(token, headers=saga(saga_id, key="same")) for _ in range(8))
    )
    assert len({reply["server"]["id"] for reply in replies}) == 1
    ledger = await sim.call("GET", f"/admin/ledger?saga_id={saga_id}", None, status=200)
    assert len(ledger) == 1


async def test_faults(sim: Sim) -> None:
    token = await sim.project()
    await sim.call("POST", "/admin/faults", None, {"fail_next": 2}, status=200)
    for _ in range(2):
        reply = await sim.server(token, status=503)
        assert reply == {"error": {"code": 503, "message": "Service Unavailable (injected)"}}
    await sim.server(token)
    await sim.call(
        "POST", "/admin/faults", None, {"fail_operations": ["delete_network"]}, status=200
    )
    reply = await sim.call("DELETE", "/network/v2.0/networks/x", token, status=503)
    assert reply["error"]["code"] == 503
    await sim.call("DELETE", "/admin/faults", None, status=200)
    await sim.call("DELETE", "/network/v2.0/networks/x", token, status=404)


async def test_embedded_runner_on_postgres(engine: AsyncEngine, pg_url: str) -> None:
    settings = VimSimSettings(db_url=pg_url, port=0)
    async with VimSimulator(settings, engine=engine) as simulator, aiohttp.ClientSession() as http:
        async with http.get(f"{simulator.url}/healthz") as response:
            assert await response.json() == {"status": "ok"}
        async with http.get(f"{simulator.url}/admin/projects") as response:
            names = {p["name"] for p in (await response.json())["projects"]}
        assert {"admin", "osm"} <= names
    # The engine belongs to the test: the simulator must leave it usable.
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def test_reset_keeps_projects(sim: Sim) -> None:
    token = await sim.project()
    await sim.server(token, headers={"X-Idempotency-Key": "k"})
    await sim.call("POST", "/admin/reset", None, status=200)
    assert await sim.call("GET", "/admin/ledger", None, status=200) == []
    await sim.call("GET", "/compute/v2.1/servers", token, status=401)
    projects = await sim.call("GET", "/admin/projects", None, status=200)
    assert {"admin", "osm"} <= {p["name"] for p in projects["projects"]}
