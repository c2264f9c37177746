"""Helpers of the VIM simulator tests: a manual clock, a simulator behind a test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from convection.db import make_engine
from vim_sim import VimSimSettings, create_app

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


@asynccontextmanager
async def open_sim(tmp_path: Path) -> AsyncIterator[Sim]:
    """A simulator on SQLite in `tmp_path` whose servers boot in 2 s of its manual clock."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'vim.db'}")
    clock = ManualClock()
    app = create_app(settings_for(tmp_path / "vim.db", boot_seconds=2.0), engine, clock=clock)
    try:
        async with TestClient(TestServer(app)) as client:
            yield Sim(client, clock)
    finally:
        await engine.dispose()


SAGA = {
    "X-Convection-Saga-Id": "saga-1",
    "X-Convection-Step": "create-vdu",
    "X-Convection-Action": "invoke",
}


def key(value: str) -> dict[str, str]:
    return {"X-Idempotency-Key": value}
