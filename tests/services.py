"""Real PostgreSQL and RabbitMQ for tests: isolated per test session, never skipped.

A test that needs a service fails loudly when the service is not reachable.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import asyncpg

PG_ADMIN_URL = os.environ.get(
    "CONVECTION_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("CONVECTION_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


class ServiceMissing(RuntimeError):
    """A service the test needs is not reachable: start it (see README.md, 'Running the tests')."""


async def _pg(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceMissing(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}. Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
        ) from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a fresh PostgreSQL database, yield its asyncpg URL, drop it afterwards."""
    name = f"convection_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        subprocess.run([exe, *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceMissing(
            f"rabbitmqctl {' '.join(args)} failed: {exc}. Start RabbitMQ with "
            "`rabbitmq-server -detached`."
        ) from exc


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """Create a fresh RabbitMQ virtual host, yield an AMQP URL for it, delete it afterwards."""
    vhost = f"convection-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"{AMQP_BASE}/{quote(vhost, safe='')}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
