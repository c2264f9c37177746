"""Fixtures of the fault tests: private servers per module, one fault-matrix world on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.faults.matrix import FIGURES, World, world
from tests.faults.private import PrivatePostgres, PrivateRabbit


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PrivateRabbit, PrivatePostgres]]:
    """One private RabbitMQ node and one private PostgreSQL cluster for a test module."""
    with PrivateRabbit() as rabbit, PrivatePostgres() as pg:
        yield rabbit, pg


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_world(
    servers: tuple[PrivateRabbit, PrivatePostgres], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """The services of a matrix module, started once (starting them costs most of a scenario):
    two coordinator replicas, the adapters, the VIM simulator and the registered VIM account."""
    async with world(servers, tmp_path_factory.mktemp("matrix") / "logs") as w:
        await w.up(replicas=2)
        await w.register_account()
        w.supervise()
        yield w


@pytest_asyncio.fixture(loop_scope="module")
async def scene(module_world: World) -> World:
    """The module's world, with whatever the previous scenario broke running again."""
    await module_world.ready()
    return module_world


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each matrix scenario's checker figures after the results (passing output hides)."""
    if FIGURES:
        terminalreporter.write_sep("=", "fault matrix: checker figures")
    for test, figures in FIGURES:
        terminalreporter.write_line(f"{test}\n{figures}")
