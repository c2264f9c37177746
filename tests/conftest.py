"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.environ  # noqa: F401  (sets the session's vault keys before anything reads them)
from tests.services import postgres_database, rabbitmq_vhost


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (asyncpg URL)."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ virtual host for this test session."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def fresh_amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ virtual host for one test."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    """A RabbitMQ vhost and a PostgreSQL database shared by one test module."""
    with rabbitmq_vhost() as amqp_url, postgres_database() as pg_url:
        yield amqp_url, pg_url
