"""The VIM simulator on SQLite: identity, catalog, faults, admin, settings and the runner."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.unit.vim_sim_support import SAGA, Sim, auth_body, key, open_sim, settings_for
from vim_sim import ProjectSpec, Quota, SettingsError, VimSimulator, load_settings


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    async with open_sim(tmp_path) as opened:
        yield opened


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
