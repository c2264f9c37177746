"""The private servers of `tests.faults.private` really are private, durable and breakable."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiormq
import asyncpg
import pytest

from tests.faults.private import (
    PrivatePostgres,
    PrivateRabbit,
    ProcessGroup,
    free_port,
    port_open,
    process_state,
    wait_port,
)
from tests.services import AMQP_BASE, PG_ADMIN_URL

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _shared_rabbit_pid() -> int:
    # The Debian wrapper is right here: it is the shared node's cookie we want.
    done = subprocess.run(
        ["/usr/sbin/rabbitmqctl", "-n", "rabbit@localhost", "status", "--formatter", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(json.loads(done.stdout)["pid"])


async def _shared_pg_started() -> object:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        return await conn.fetchval("SELECT pg_postmaster_start_time()")
    finally:
        await conn.close()


@pytest.fixture(scope="module", autouse=True)
def shared_baseline() -> dict[str, object]:
    """How the machine's shared servers look before any private server is touched."""
    return {"rabbit_pid": _shared_rabbit_pid(), "pg_started": asyncio.run(_shared_pg_started())}


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def rabbit_node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        yield node
        print(f"private RabbitMQ starts took {node.start_seconds}")


@pytest.fixture
def rabbit(rabbit_node: PrivateRabbit) -> PrivateRabbit:
    # A test that failed mid-outage must not take the following tests down with it.
    rabbit_node.ensure_running()
    return rabbit_node


async def _connect(pg: PrivatePostgres) -> asyncpg.Connection:
    return await asyncpg.connect(pg.dsn, timeout=5)


async def _write_row(pg: PrivatePostgres, value: str) -> None:
    conn = await _connect(pg)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS t (v text)")
        await conn.execute("INSERT INTO t VALUES ($1)", value)
    finally:
        await conn.close()


async def _rows(pg: PrivatePostgres) -> list[str]:
    conn = await _connect(pg)
    try:
        return [r["v"] for r in await conn.fetch("SELECT v FROM t")]
    finally:
        await conn.close()


async def test_pg_starts_private_and_durable(pg: PrivatePostgres) -> None:
    assert pg.port not in (5432, 0)
    conn = await _connect(pg)
    try:
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW max_connections") == "200"
        assert await conn.fetchval("SHOW data_directory") == str(pg.data)
        assert await conn.fetchval("SHOW unix_socket_directories") == str(pg.socket_dir)
    finally:
        await conn.close()
    url = pg.create_database("other db")
    assert url == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/other db"
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'other db'") == "1"
    print(f"private PostgreSQL start took {pg.start_seconds[0]:.2f}s")


@pytest.mark.parametrize("mode", ["immediate", "kill"])
async def test_pg_committed_row_survives_crash_restart(pg: PrivatePostgres, mode: str) -> None:
    await _write_row(pg, "committed")
    began = time.monotonic()
    await pg.arestart(mode)
    print(f"private PostgreSQL {mode} restart took {time.monotonic() - began:.2f}s")
    assert await _rows(pg) == ["committed"]
    # No shutdown checkpoint happened: the start had to replay the WAL.
    assert "database system was interrupted" in pg.log_path.read_text()


async def test_pg_outage_refuses_then_serves(pg: PrivatePostgres) -> None:
    await _write_row(pg, "before")
    held = await _connect(pg)
    outage = asyncio.create_task(pg.outage(1.5))
    try:
        for _ in range(500):
            if not port_open(pg.port):
                break
            await asyncio.sleep(0.02)
        with pytest.raises(OSError):
            await _connect(pg)
        # The server said goodbye (fast shutdown) before it went: the held connection is dead.
        with pytest.raises((asyncpg.InterfaceError, asyncpg.AdminShutdownError, OSError)):
            await held.fetchval("SELECT 1")
    finally:
        await outage
        await held.close()
    assert await _rows(pg) == ["before"]
    async with pg.down(mode="immediate"):
        assert not pg.running
        with pytest.raises(OSError):
            await _connect(pg)
    assert await _rows(pg) == ["before"]


async def test_pg_stat_statements_switch() -> None:
    with PrivatePostgres(stat_statements=True) as cluster:
        conn = await asyncpg.connect(cluster.dsn, timeout=5)
        try:
            await conn.execute("CREATE EXTENSION pg_stat_statements")
            for _ in range(3):
                await conn.fetchval("SELECT 40 + 2")
            calls = await conn.fetchval(
                "SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE 'SELECT $1 + $2'"
            )
        finally:
            await conn.close()
    assert calls == 3
    assert not cluster.root.exists()


async def test_rabbit_node_is_private(rabbit: PrivateRabbit) -> None:
    assert rabbit.port != 5672
    assert rabbit.node.startswith("convection-test-")
    status = json.loads(rabbit.rabbitmqctl("status", "--formatter", "json"))
    assert status["pid"] == rabbit.beam_pid
    assert {(x["port"], x["interface"]) for x in status["listeners"]} >= {
        (rabbit.port, "127.0.0.1"),
        (rabbit.dist_port, "127.0.0.1"),
    }
    assert status["config_files"] == [str(rabbit.root / "rabbitmq.conf")]
    assert status["active_plugins"] == []
    print(f"private RabbitMQ first start took {rabbit.start_seconds[0]:.2f}s")


async def _publish_confirmed(url: str, queue_name: str, body: bytes) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
        )


async def _get_one(url: str, queue_name: str) -> bytes:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        message = await queue.get(timeout=10)
        await message.ack()
        return message.body


@pytest.mark.parametrize("mode", ["graceful", "kill"])
async def test_rabbit_quorum_message_survives_restart(rabbit: PrivateRabbit, mode: str) -> None:
    queue_name = f"durable-{mode}"
    await _publish_confirmed(rabbit.url, queue_name, b"keep me")
    began = time.monotonic()
    await rabbit.astop(mode)
    halted = time.monotonic()
    await rabbit.astart()
    print(
        f"private RabbitMQ {mode} stop took {halted - began:.2f}s, "
        f"start {time.monotonic() - halted:.2f}s"
    )
    assert await _get_one(rabbit.url, queue_name) == b"keep me"


async def test_rabbit_close_connections_drops_clients(rabbit: PrivateRabbit) -> None:
    connection = await aio_pika.connect(rabbit.url, timeout=10)
    dropped: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_close(_: object, exc: BaseException | None) -> None:
        if not dropped.done():
            dropped.set_result(exc)

    # aio-pika's closed() only resolves on a client-side close(); a server-side close shows in
    # the close callbacks.
    connection.close_callbacks.add(on_close)
    try:
        await connection.channel()
        await asyncio.to_thread(rabbit.close_connections, "fault test")
        reason = await asyncio.wait_for(dropped, 15)
        assert isinstance(reason, aiormq.exceptions.ConnectionClosed)
        assert "fault test" in str(reason)
    finally:
        await connection.close()


async def test_rabbit_permissions_limit_a_user(rabbit: PrivateRabbit) -> None:
    vhost = f"perm-{secrets.token_hex(4)}"
    admin_url = rabbit.add_vhost(vhost)
    admin = await aio_pika.connect(admin_url, timeout=10)
    async with admin:
        channel = await admin.channel()
        for name in ("allowed.events", "other"):
            await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)
    rabbit.add_user("limited", "secret", tags=("monitoring",))
    rabbit.set_permissions(vhost, "limited", "^$", r"^allowed\..*", "^$")
    limited = await aio_pika.connect(rabbit.url_for("limited", "secret", vhost), timeout=10)
    async with limited:
        channel = await limited.channel(publisher_confirms=True)
        allowed = await channel.get_exchange("allowed.events", ensure=False)
        await allowed.publish(aio_pika.Message(b"ok"), routing_key="")
        other = await channel.get_exchange("other", ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await other.publish(aio_pika.Message(b"no"), routing_key="")
    assert "limited" in rabbit.rabbitmqctl("list_users")


async def test_process_group_kills_freezes_and_restarts(tmp_path: Path) -> None:
    port = free_port()
    with ProcessGroup(tmp_path) as group:
        web = group.spawn("web", "http.server", str(port), "--bind", "127.0.0.1")
        await web.wait_for_log("Serving HTTP")
        wait_port(port, 10)
        web.freeze()
        assert process_state(web.pid) == "T"
        web.thaw()
        assert group.kill("web") == -9
        assert not port_open(port)
        group.restart("web")
        await web.wait_for_log("Serving HTTP")
        assert web.starts == 2
        assert group.terminate("web") != 0
        assert "--- start 2:" in web.log_text()
        group.spawn_argv("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert not group["sleeper"].running


def test_shared_services_untouched(shared_baseline: dict[str, object]) -> None:
    assert _shared_rabbit_pid() == shared_baseline["rabbit_pid"]
    assert asyncio.run(_shared_pg_started()) == shared_baseline["pg_started"]

    async def amqp_login() -> None:
        connection = await aio_pika.connect(f"{AMQP_BASE}/", timeout=10)
        await connection.close()

    asyncio.run(amqp_login())
