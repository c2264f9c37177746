"""Fixtures of the transport contract tests: each backend in turn, and a transport open on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from convection.transport import MemoryBroker, Transport
from tests.contract.transport_support import Backend


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.amqp)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "amqp":
        return Backend("amqp", request.getfixturevalue("fresh_amqp_url"), None)
    return Backend("memory", "memory://", MemoryBroker())


@pytest.fixture
async def transport(backend: Backend) -> AsyncIterator[Transport]:
    async with backend.open() as opened:
        yield opened
