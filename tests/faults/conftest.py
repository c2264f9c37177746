"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.private import PrivatePostgres, PrivateRabbit


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PrivateRabbit, PrivatePostgres]]:
    """One private RabbitMQ node and one private PostgreSQL cluster for a test module."""
    with PrivateRabbit() as rabbit, PrivatePostgres() as pg:
        yield rabbit, pg
