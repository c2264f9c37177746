"""The VIM simulator on SQLite: identity, compute, network, quota, idempotency, ledger, faults."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from convection.db import make_engine
from vim_sim import (
    ProjectSpec,
    Quota,
    SettingsError,
    VimSimSettings,
    VimSimulator,
    create_app,
    load_settings,
)

Json = Any


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def auth_body(user: str, password: str, project: str) -> Json:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": "Default"}}
                },
            },
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
        }
    }


class Sim:
    """A simulator behind an aiohttp test client, with a manual clock and call helpers."""

    def __init__(self, client: TestClient[Any, Any], clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    async def token(self, project: str = "osm", password: str | None = None) -> str:
        response = await self.client.post(
            "/identity/v3/auth/tokens", json=auth_body(project, password or project, project)
        )
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

    async def network(self, token: str, name: str = "net", cidr: str | None = None) -> str:
        reply = await self.call(
            "POST", "/network/v2.0/networks", token, {"network": {"name": name}}, status=201
        )
        network_id: str = reply["network"]["id"]
        if cidr is not None:
            subnet = {"subnet": {"network_id": network_id, "cidr": cidr, "ip_version": 4}}
            await self.call("POST", "/network/v2.0/subnets", token, subnet, status=201)
        return network_id

    async def server(
        self,
        token: str,
        name: str = "vm",
        flavor: str = "m1.tiny",
        networks: list[str] | None = None,
        *,
        status: int = 202,
        headers: dict[str, str] | None = None,
    ) -> Json:
        body = {
            "server": {
                "name": name,
                "imageRef": "ubuntu-22.04",
                "flavorRef": flavor,
                "networks": [{"uuid": n} for n in networks or []],
                "metadata": {"vnf": name},
            }
        }
        return await self.call(
            "POST", "/compute/v2.1/servers", token, body, status=status, headers=headers
        )

    async def admin(self, method: str, path: str, body: Json = None, *, status: int = 200) -> Json:
        return await self.call(method, path, None, body, status=status)


def settings_for(db: Path, **overrides: Any) -> VimSimSettings:
    return VimSimSettings(db_url=f"sqlite+aiosqlite:///{db}", port=0, **overrides)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'vim.db'}")
    clock = ManualClock()
    app = create_app(settings_for(tmp_path / "vim.db", boot_seconds=2.0), engine, clock=clock)
    try:
        async with TestClient(TestServer(app)) as client:
            yield Sim(client, clock)
    finally:
        await engine.dispose()


# --- identity -------------------------------------------------------------------------------


async def test_password_auth_gives_a_project_scoped_token_and_catalog(sim: Sim) -> None:
    response = await sim.client.post(
        "/identity/v3/auth/tokens", json=auth_body("osm", "osm", "osm")
    )
    assert response.status == 201
    assert len(response.headers["X-Subject-Token"]) == 64
    token = (await response.json())["token"]
    assert token["project"]["name"] == "osm"
    assert token["expires_at"].endswith("Z")
    base = f"http://{sim.client.host}:{sim.client.port}"
    public = {
        service["type"]: next(e["url"] for e in service["endpoints"] if e["interface"] == "public")
        for service in token["catalog"]
    }
    assert public["compute"] == f"{base}/compute/v2.1"
    assert public["network"] == f"{base}/network/v2.0"
    assert public["image"] == f"{base}/image/v2"


@pytest.mark.parametrize(
    ("user", "password", "project"),
    [
        ("osm", "wrong", "osm"),
        ("nobody", "osm", "osm"),
        ("osm", "osm", "admin"),
        ("osm", "osm", "x"),
    ],
)
async def test_bad_credentials_are_401(sim: Sim, user: str, password: str, project: str) -> None:
    response = await sim.client.post(
        "/identity/v3/auth/tokens", json=auth_body(user, password, project)
    )
    assert response.status == 401
    assert await response.json() == {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }


async def test_malformed_auth_body_is_400(sim: Sim) -> None:
    response = await sim.client.post("/identity/v3/auth/tokens", json={"auth": {}})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == 400


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_api_calls_need_a_valid_token(sim: Sim, token: str | None) -> None:
    for path in ("/compute/v2.1/servers/detail", "/network/v2.0/networks", "/image/v2/images"):
        reply = await sim.call("GET", path, token, status=401)
        assert reply["error"]["code"] == 401


async def test_tokens_expire_after_an_hour(sim: Sim) -> None:
    token = await sim.token()
    await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    sim.clock.advance(3601)
    await sim.call("GET", "/compute/v2.1/servers", token, status=401)


# --- catalog --------------------------------------------------------------------------------


async def test_images_and_flavors(sim: Sim) -> None:
    token = await sim.token()
    images = (await sim.call("GET", "/image/v2/images", token, status=200))["images"]
    assert {image["name"] for image in images} == {"ubuntu-22.04", "debian-12", "cirros-0.6"}
    cirros = next(image for image in images if image["name"] == "cirros-0.6")
    by_id = await sim.call("GET", f"/image/v2/images/{cirros['id']}", token, status=200)
    assert by_id["name"] == "cirros-0.6"
    flavors = (await sim.call("GET", "/compute/v2.1/flavors/detail", token, status=200))["flavors"]
    assert {f["name"]: f["vcpus"] for f in flavors} == {
        "m1.tiny": 1,
        "m1.small": 1,
        "m1.medium": 2,
        "m1.large": 4,
        "m1.xlarge": 8,
    }
    large = await sim.call("GET", "/compute/v2.1/flavors/m1.large", token, status=200)
    assert large["flavor"]["id"] == "4"
    assert large["flavor"]["ram"] == 8192
    missing = await sim.call("GET", "/compute/v2.1/flavors/m9.huge", token, status=404)
    assert missing == {
        "itemNotFound": {"code": 404, "message": "Flavor m9.huge could not be found."}
    }


# --- networks and servers -------------------------------------------------------------------


async def test_server_boots_from_build_to_active(sim: Sim) -> None:
    token = await sim.token()
    network_id = await sim.network(token, "mgmt", cidr="192.168.10.0/24")
    created = await sim.server(token, "vdu-1", networks=[network_id])
    server_id = created["server"]["id"]
    assert created["server"]["links"][0]["href"].endswith(f"/compute/v2.1/servers/{server_id}")

    server = (await sim.call("GET", f"/compute/v2.1/servers/{server_id}", token, status=200))[
        "server"
    ]
    assert server["status"] == "BUILD"
    assert server["name"] == "vdu-1"
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert server["image"]["name"] == "ubuntu-22.04"
    assert server["metadata"] == {"vnf": "vdu-1"}
    assert server["addresses"]["mgmt"][0]["addr"] == "192.168.10.2"

    sim.clock.advance(2.0)
    server = (await sim.call("GET", f"/compute/v2.1/servers/{server_id}", token, status=200))[
        "server"
    ]
    assert server["status"] == "ACTIVE"


async def test_networks_list_filters(sim: Sim) -> None:
    token = await sim.token()
    for name, tags in (("a", ["x", "y"]), ("b", ["x"]), ("c", [])):
        body = {"network": {"name": name, "tags": tags}}
        await sim.call("POST", "/network/v2.0/networks", token, body, status=201)

    async def names(query: str) -> list[str]:
        reply = await sim.call("GET", f"/network/v2.0/networks{query}", token, status=200)
        return sorted(network["name"] for network in reply["networks"])

    assert await names("") == ["a", "b", "c"]
    assert await names("?name=b") == ["b"]
    assert await names("?tags=x,y") == ["a"]
    assert await names("?tags=x") == ["a", "b"]
    assert await names("?tags-any=y,zzz") == ["a"]
    other = await sim.token("admin")
    assert (await sim.call("GET", "/network/v2.0/networks", other, status=200))["networks"] == []


async def test_servers_list_filters(sim: Sim) -> None:
    token = await sim.token()
    await sim.server(token, "web-1")
    await sim.server(token, "web-2")
    await sim.server(token, "db-1")

    async def names(query: str) -> list[str]:
        reply = await sim.call("GET", f"/compute/v2.1/servers/detail{query}", token, status=200)
        return sorted(server["name"] for server in reply["servers"])

    assert await names("") == ["db-1", "web-1", "web-2"]
    assert await names("?name=^web") == ["web-1", "web-2"]
    assert await names("?name=^web-1$") == ["web-1"]
    assert await names("?metadata.vnf=db-1") == ["db-1"]
    assert await names("?status=ACTIVE") == []
    short = await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    assert set(short["servers"][0]) == {"id", "name", "links"}


async def test_servers_are_private_to_their_project(sim: Sim) -> None:
    token, other = await sim.token(), await sim.token("admin")
    server_id = (await sim.server(token))["server"]["id"]
    await sim.call("GET", f"/compute/v2.1/servers/{server_id}", other, status=404)
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", other, status=404)


async def test_unknown_image_flavor_or_network_is_400(sim: Sim) -> None:
    token = await sim.token()
    body: Json = {"server": {"name": "x", "imageRef": "ubuntu-99", "flavorRef": "m1.tiny"}}
    reply = await sim.call("POST", "/compute/v2.1/servers", token, body, status=400)
    assert reply == {"badRequest": {"code": 400, "message": "Image ubuntu-99 could not be found."}}
    body["server"] |= {"imageRef": "debian-12", "flavorRef": "m9.huge"}
    reply = await sim.call("POST", "/compute/v2.1/servers", token, body, status=400)
    assert reply["badRequest"]["message"] == "Flavor m9.huge could not be found."
    body["server"] |= {"flavorRef": "2", "networks": [{"uuid": "no-such-net"}]}
    reply = await sim.call("POST", "/compute/v2.1/servers", token, body, status=400)
    assert reply["badRequest"]["message"] == "Network no-such-net could not be found."
    reply = await sim.call("POST", "/compute/v2.1/servers", token, {"server": {}}, status=400)
    assert "server.name" in reply["badRequest"]["message"]


async def test_cores_quota(sim: Sim) -> None:
    spec = {"name": "q", "user": "q", "password": "q", "quota": {"cores": 20, "instances": 10}}
    await sim.admin("POST", "/admin/projects", spec, status=201)
    token = await sim.token("q")
    for flavor in ("m1.xlarge", "m1.xlarge", "m1.tiny", "m1.small"):
        await sim.server(token, flavor=flavor)
    reply = await sim.server(token, flavor="m1.large", status=403)
    assert reply == {
        "forbidden": {
            "code": 403,
            "message": "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores",
        }
    }
    await sim.server(token, flavor="m1.medium")


async def test_instances_quota_and_its_release_on_delete(sim: Sim) -> None:
    spec = {"name": "q", "user": "q", "password": "q", "quota": {"instances": 2}}
    await sim.admin("POST", "/admin/projects", spec, status=201)
    token = await sim.token("q")
    first = (await sim.server(token))["server"]["id"]
    await sim.server(token)
    reply = await sim.server(token, status=403)
    assert reply["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    )
    await sim.call("DELETE", f"/compute/v2.1/servers/{first}", token, status=204)
    await sim.server(token)


async def test_concurrent_creates_never_exceed_the_quota(sim: Sim) -> None:
    spec = {"name": "q", "user": "q", "password": "q", "quota": {"instances": 5}}
    await sim.admin("POST", "/admin/projects", spec, status=201)
    token = await sim.token("q")
    body = {"server": {"name": "vm", "imageRef": "cirros-0.6", "flavorRef": "m1.tiny"}}

    async def create() -> int:
        response = await sim.client.post(
            "/compute/v2.1/servers", json=body, headers={"X-Auth-Token": token}
        )
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(create() for _ in range(12)))
    assert sorted(statuses) == [202] * 5 + [403] * 7


# --- idempotency and ledger -----------------------------------------------------------------

SAGA = {
    "X-Convection-Saga-Id": "saga-1",
    "X-Convection-Step": "create-vdu",
    "X-Convection-Action": "invoke",
}


def key(value: str) -> dict[str, str]:
    return {"X-Idempotency-Key": value}


async def test_idempotent_create_replays_without_a_second_effect(sim: Sim) -> None:
    token = await sim.token()
    network_id = await sim.network(token)
    first = await sim.server(token, networks=[network_id], headers=SAGA | key("k-1"))
    again = await sim.server(token, networks=[network_id], headers=SAGA | key("k-1"))
    assert again == first
    servers = await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    assert len(servers["servers"]) == 1

    ledger = await sim.admin("GET", "/admin/ledger?saga_id=saga-1")
    assert [(row["operation"], row["resource_id"]) for row in ledger] == [
        ("create_server", first["server"]["id"])
    ]
    row = ledger[0]
    assert (row["step"], row["action"], row["idempotency_key"]) == ("create-vdu", "invoke", "k-1")

    body = {"network": {"name": "n"}}
    net = await sim.call(
        "POST", "/network/v2.0/networks", token, body, status=201, headers=key("n-1")
    )
    net_again = await sim.call(
        "POST", "/network/v2.0/networks", token, body, status=201, headers=key("n-1")
    )
    assert net_again == net
    # The same key for another kind of create is a client bug: refuse it.
    reply = await sim.server(token, status=409, headers=key("n-1"))
    assert "create_network" in reply["conflictingRequest"]["message"]


async def test_a_failed_create_is_not_remembered(sim: Sim) -> None:
    token = await sim.token()
    await sim.server(token, flavor="m9.huge", status=400, headers=key("k"))
    await sim.server(token, status=202, headers=key("k"))


async def test_idempotency_keys_are_per_project(sim: Sim) -> None:
    token, other = await sim.token(), await sim.token("admin")
    first = await sim.server(token, headers=key("k"))
    second = await sim.server(other, headers=key("k"))
    assert first["server"]["id"] != second["server"]["id"]


async def test_delete_records_once_and_the_saga_is_undone(sim: Sim) -> None:
    token = await sim.token()
    network_id = await sim.network(token, "n", cidr="10.0.0.0/24")
    server_id = (await sim.server(token, networks=[network_id], headers=SAGA))["server"]["id"]
    resources = await sim.admin("GET", "/admin/resources?saga_id=saga-1")
    assert [server["id"] for server in resources["servers"]] == [server_id]
    assert resources["servers"][0]["metadata"]["convection_saga_id"] == "saga-1"

    undo = SAGA | {"X-Convection-Action": "compensate"}
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", token, status=204, headers=undo)
    gone = await sim.call(
        "DELETE", f"/compute/v2.1/servers/{server_id}", token, status=404, headers=undo
    )
    assert gone == {
        "itemNotFound": {"code": 404, "message": f"Instance {server_id} could not be found."}
    }
    await sim.call("GET", f"/compute/v2.1/servers/{server_id}", token, status=404)

    ledger = await sim.admin("GET", "/admin/ledger?saga_id=saga-1")
    assert [(row["operation"], row["action"], row["resource_id"]) for row in ledger] == [
        ("create_server", "invoke", server_id),
        ("delete_server", "compensate", server_id),
    ]
    assert (await sim.admin("GET", "/admin/resources?saga_id=saga-1"))["servers"] == []


async def test_network_in_use_cannot_be_deleted(sim: Sim) -> None:
    token = await sim.token()
    network_id = await sim.network(token, "n", cidr="10.1.0.0/24")
    server_id = (await sim.server(token, networks=[network_id]))["server"]["id"]
    reply = await sim.call("DELETE", f"/network/v2.0/networks/{network_id}", token, status=409)
    assert reply["NeutronError"]["type"] == "NetworkInUse"
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", token, status=204)
    await sim.call("DELETE", f"/network/v2.0/networks/{network_id}", token, status=204)
    reply = await sim.call("DELETE", f"/network/v2.0/networks/{network_id}", token, status=404)
    assert reply == {
        "NeutronError": {
            "type": "NetworkNotFound",
            "message": f"Network {network_id} could not be found.",
            "detail": "",
        }
    }
    assert (await sim.call("GET", "/network/v2.0/subnets", token, status=200))["subnets"] == []
    operations = [row["operation"] for row in await sim.admin("GET", "/admin/ledger")]
    assert operations == [
        "create_network",
        "create_subnet",
        "create_server",
        "delete_server",
        "delete_network",
    ]


async def test_subnets(sim: Sim) -> None:
    token = await sim.token()
    network_id = await sim.network(token)
    body: Json = {"subnet": {"network_id": network_id, "cidr": "10.2.0.1/24", "ip_version": 4}}
    reply = await sim.call("POST", "/network/v2.0/subnets", token, body, status=400)
    assert "'10.2.0.0/24' is recommended" in reply["NeutronError"]["message"]
    body["subnet"]["cidr"] = "10.2.0.0/24"
    subnet = (await sim.call("POST", "/network/v2.0/subnets", token, body, status=201))["subnet"]
    assert subnet["gateway_ip"] == "10.2.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.2.0.2", "end": "10.2.0.254"}]
    body["subnet"]["cidr"] = "10.2.0.128/25"
    await sim.call("POST", "/network/v2.0/subnets", token, body, status=400)
    body["subnet"]["network_id"] = "nope"
    reply = await sim.call("POST", "/network/v2.0/subnets", token, body, status=404)
    assert reply["NeutronError"]["type"] == "NetworkNotFound"
    network = await sim.call("GET", f"/network/v2.0/networks/{network_id}", token, status=200)
    assert network["network"]["subnets"] == [subnet["id"]]
    server_id = (await sim.server(token, networks=[network_id]))["server"]["id"]
    await sim.call("DELETE", f"/network/v2.0/subnets/{subnet['id']}", token, status=409)
    await sim.call("DELETE", f"/compute/v2.1/servers/{server_id}", token, status=204)
    await sim.call("DELETE", f"/network/v2.0/subnets/{subnet['id']}", token, status=204)
    await sim.call("GET", f"/network/v2.0/subnets/{subnet['id']}", token, status=404)


# --- faults ---------------------------------------------------------------------------------

INJECTED = {"error": {"code": 503, "message": "Service Unavailable (injected)"}}


async def test_fail_next_fails_that_many_calls_then_recovers(sim: Sim) -> None:
    token = await sim.token()
    faults = await sim.admin("POST", "/admin/faults", {"fail_next": 2, "status": 503})
    assert faults["fail_next"] == 2
    # Admin endpoints and the health check neither fail nor use up the count.
    await sim.admin("GET", "/healthz")
    assert (await sim.admin("GET", "/admin/faults"))["fail_next"] == 2
    for _ in range(2):
        assert await sim.server(token, status=503) == INJECTED
    await sim.server(token)
    assert (await sim.admin("GET", "/admin/ledger"))[0]["operation"] == "create_server"
    assert len(await sim.admin("GET", "/admin/ledger")) == 1


async def test_failing_an_operation_always_until_reset(sim: Sim) -> None:
    token = await sim.token()
    await sim.admin("POST", "/admin/faults", {"fail_operations": ["create_server"], "status": 500})
    for _ in range(3):
        reply = await sim.server(token, status=500)
        assert reply["error"]["message"] == "Internal Server Error (injected)"
    await sim.call("GET", "/compute/v2.1/servers", token, status=200)
    reset = await sim.admin("DELETE", "/admin/faults")
    assert reset == {
        "fail_next": 0,
        "status": 503,
        "latency_ms": 0,
        "fail_operations": [],
        "after_effect": False,
    }
    await sim.server(token)


async def test_authentication_can_fail_too(sim: Sim) -> None:
    await sim.admin("POST", "/admin/faults", {"fail_operations": ["authenticate"]})
    response = await sim.client.post(
        "/identity/v3/auth/tokens", json=auth_body("osm", "osm", "osm")
    )
    assert response.status == 503


async def test_a_lost_reply_is_recovered_by_the_idempotency_key(sim: Sim) -> None:
    token = await sim.token()
    await sim.admin("POST", "/admin/faults", {"fail_next": 1, "after_effect": True})
    await sim.server(token, status=503, headers=SAGA | key("k"))
    retried = await sim.server(token, headers=SAGA | key("k"))
    ledger = await sim.admin("GET", "/admin/ledger?saga_id=saga-1")
    assert [row["resource_id"] for row in ledger] == [retried["server"]["id"]]


async def test_fault_configuration_is_validated(sim: Sim) -> None:
    reply = await sim.admin(
        "POST", "/admin/faults", {"fail_operations": ["create_srv"]}, status=400
    )
    assert "create_srv" in reply["error"]["message"]
    await sim.admin("POST", "/admin/faults", {"status": 200}, status=400)
    await sim.admin("POST", "/admin/faults", {"latency_ms": 5})
    assert (await sim.admin("GET", "/admin/faults"))["latency_ms"] == 5


# --- admin ----------------------------------------------------------------------------------


async def test_projects_can_be_added_at_run_time(sim: Sim) -> None:
    spec = {"name": "tenant-a", "user": "alice", "password": "s3cret", "quota": {"cores": 4}}
    created = await sim.admin("POST", "/admin/projects", spec, status=201)
    assert created["project"]["quota"] == {"cores": 4, "instances": 10}
    await sim.admin("POST", "/admin/projects", spec, status=409)
    await sim.admin("POST", "/admin/projects", {"name": "x"}, status=400)
    response = await sim.client.post(
        "/identity/v3/auth/tokens", json=auth_body("alice", "s3cret", "tenant-a")
    )
    assert response.status == 201
    projects = (await sim.admin("GET", "/admin/projects"))["projects"]
    assert [p["name"] for p in projects] == ["admin", "osm", "tenant-a"]


async def test_reset_clears_everything_but_projects(sim: Sim) -> None:
    token = await sim.token()
    await sim.server(token, networks=[await sim.network(token)], headers=key("k"))
    await sim.admin("POST", "/admin/reset")
    assert await sim.admin("GET", "/admin/ledger") == []
    assert await sim.admin("GET", "/admin/resources") == {
        "servers": [],
        "networks": [],
        "subnets": [],
    }
    await sim.call("GET", "/compute/v2.1/servers", token, status=401)
    token = await sim.token()
    await sim.server(token, headers=key("k"))
    assert len(await sim.admin("GET", "/admin/ledger")) == 1


async def test_health_and_unknown_paths(sim: Sim) -> None:
    assert await sim.admin("GET", "/healthz") == {"status": "ok"}
    reply = await sim.admin("GET", "/nothing-here", status=404)
    assert reply["error"]["code"] == 404


# --- settings and the runner ----------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVECTION_DB_URL", "postgresql+asyncpg://u@h/db")
    monkeypatch.setenv("CONVECTION_VIM_SIM_BOOT_SECONDS", "0.5")
    monkeypatch.setenv(
        "CONVECTION_VIM_SIM_PROJECTS",
        '[{"name": "p", "user": "u", "password": "pw", "quota": {"cores": 2, "instances": 1}}]',
    )
    monkeypatch.setenv("CONVECTION_VIM_SIM_FAULTS", '{"latency_ms": 10}')
    settings = load_settings()
    assert settings.db_url == "postgresql+asyncpg://u@h/db"
    assert settings.boot_seconds == 0.5
    assert settings.projects == (
        ProjectSpec(name="p", user="u", password="pw", quota=Quota(cores=2, instances=1)),
    )
    assert settings.faults.latency_ms == 10
    assert load_settings().port == 6080


def test_invalid_settings_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVECTION_VIM_SIM_PORT", "70000")
    monkeypatch.setenv("CONVECTION_VIM_SIM_FAULTS", '{"fail_operations": ["reboot"]}')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "port" in str(caught.value)
    assert "unknown operation(s) reboot" in str(caught.value)


async def test_runner_on_a_free_port_boots_servers_in_real_time(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "vim.db", boot_seconds=0.2)
    async with VimSimulator(settings) as simulator, aiohttp.ClientSession() as http:
        assert simulator.url.startswith("http://127.0.0.1:")
        async with http.post(
            f"{simulator.url}/identity/v3/auth/tokens", json=auth_body("admin", "admin", "admin")
        ) as response:
            token = response.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token}
        body = {"server": {"name": "vm", "imageRef": "cirros-0.6", "flavorRef": "m1.tiny"}}
        async with http.post(
            f"{simulator.url}/compute/v2.1/servers", json=body, headers=headers
        ) as response:
            assert response.status == 202
            server_id = (await response.json())["server"]["id"]
        status = "BUILD"
        for _ in range(100):
            async with http.get(
                f"{simulator.url}/compute/v2.1/servers/{server_id}", headers=headers
            ) as response:
                status = (await response.json())["server"]["status"]
            if status == "ACTIVE":
                break
            await asyncio.sleep(0.05)
        assert status == "ACTIVE"
    with pytest.raises(RuntimeError):
        _ = simulator.url


async def test_python_m_vim_sim_serves_until_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ)
    env |= {
        "CONVECTION_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'vim.db'}",
        "CONVECTION_VIM_SIM_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vim_sim", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = (await process.stderr.readline()).decode()
                assert line, "vim_sim exited before listening"
                if "listening on " in line:
                    url = line.split("listening on ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as response:
            assert await response.json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.stderr.read()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_python_m_vim_sim_refuses_bad_settings() -> None:
    env = dict(os.environ) | {"CONVECTION_VIM_SIM_BOOT_SECONDS": "-1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vim_sim", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "invalid vim-sim settings: boot_seconds" in stderr.decode()


async def test_python_m_vim_sim_exits_4_when_its_database_is_unreachable() -> None:
    # A supervisor restarts it as it restarts the adapters; no traceback, one line saying why.
    env = dict(os.environ) | {
        "CONVECTION_DB_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        "CONVECTION_VIM_SIM_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vim_sim", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    text = stderr.decode()
    assert process.returncode == 4, text
    assert "vim-sim cannot start: the database" in text and "unreachable" in text, text
    assert "Traceback" not in text, text
