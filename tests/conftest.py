"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from convection.sealing import generate_keypair
from tests.services import postgres_database, rabbitmq_vhost

# Every coordinator and adapter of the test session, in this process or started from it,
# shares one vault key pair: VIM passwords travel sealed, as they do in production.
_PRIVATE, _PUBLIC = generate_keypair()
os.environ.setdefault("CONVECTION_VAULT_KEY", _PRIVATE)
os.environ.setdefault("CONVECTION_VAULT_PUBLIC_KEY", _PUBLIC)


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
