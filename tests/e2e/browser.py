"""A real headless Chromium for the dashboard's tests, and the OSM stack it looks at.

The browser is Debian's `chromium`, driven by Playwright with `executable_path` (Playwright's
own browser builds are never downloaded); without it the tests fail, loudly, never skip.
The stack is the coordinator (API and dashboard), the three adapters as `convection adapter
vim|ro|lcm` and the VIM simulator, each its own process, on the real RabbitMQ and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from contracts import topology
from tests.e2e.stack import Stack
from tests.faults.private import free_port
from tests.integration.coord_support import migrate
from tests.unit.world import example

OPERATOR, READER = "ui-operator-token", "ui-reader-token"
TOKENS = {
    OPERATOR: {"role": "operator", "name": "olga"},
    READER: {"role": "reader", "name": "rick"},
}
SHOTS = Path(os.environ.get("CONVECTION_SCREENSHOTS", "/tmp/convection-dashboard-screenshots"))
"""Where each test saves its screenshot."""


def chromium() -> str:
    """Return the system Chromium's path, or fail saying how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError(
            "the dashboard tests need Debian's chromium: apt-get install -y chromium "
            "(.ci/run installs it)"
        )
    return found


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """Launch the system Chromium headless."""
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as `<SHOTS>/<name>.png` and print where."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


class Osm(Stack):
    """The OSM stack with the coordinator's API and dashboard at `api`."""

    api = ""

    def account(self, vim_account_id: str) -> dict[str, Any]:
        """The input of a vim-account.create on the simulator."""
        data = example("vim-account.create", vim_account_id=vim_account_id)
        data["credentials"]["auth_url"] = f"{self.sim}/identity/v3"
        return data

    async def sign_in(self, page: Page, token: str) -> None:
        """Sign in through the login form, as a person would."""
        await page.goto(self.api + "/ui/login")
        await page.fill("input[name=token]", token)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/ui/sagas")


def ns(ns_id: str, account: str) -> dict[str, Any]:
    """The input of an ns.instantiate on `account`."""
    return example("ns.instantiate", ns_id=ns_id, vim_account_id=account)


@asynccontextmanager
async def osm(logs: Path, amqp_url: str, pg_url: str) -> AsyncIterator[Osm]:
    """Run the stack; yield it once every service consumes."""
    await migrate(pg_url)
    stack = Osm(amqp_url, pg_url, logs)
    port = free_port()
    stack.api = f"http://127.0.0.1:{port}"
    async with stack.running():
        # VMs take seconds to boot: a saga runs across several of the list's 2 s polls.
        stack.spawn("vim_sim", "vim_sim", CONVECTION_VIM_SIM_BOOT_SECONDS="3.0")
        stack.spawn(
            "coordinator",
            "coordinator",
            CONVECTION_API_PORT=str(port),
            CONVECTION_API_TOKENS=json.dumps(TOKENS),
            CONVECTION_JAEGER_URL="http://jaeger.test:16686",
        )
        for service in ("vim", "ro", "lcm"):
            stack.spawn(f"{service}_adapter", "convection", "adapter", service)
        for service in ("vim", "ro", "lcm"):
            await stack.consumers(topology.command_queue(service))
        await stack.consumers(topology.COORDINATOR_SAGAS_QUEUE)
        yield stack
