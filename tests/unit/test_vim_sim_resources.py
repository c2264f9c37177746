"""The VIM simulator's compute and network on SQLite: servers, quota, idempotency, ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.vim_sim_support import SAGA, Json, Sim, key, open_sim


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    async with open_sim(tmp_path) as opened:
        yield opened


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
