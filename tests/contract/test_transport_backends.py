"""What only one transport has: a network to lose (RabbitMQ), `MemoryBroker.join`, URL schemes."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest

from contracts.topology import Queue, Topology
from convection.transport import (
    Delivery,
    MemoryBroker,
    PublishError,
    TopologyMissing,
    TransportError,
    open_transport,
)
from tests.contract.transport_support import (
    TOPOLOGY,
    VIM_QUEUE,
    WAIT,
    Inbox,
    eventually,
    publish_command,
)

# Only the AMQP transport has a network to lose.


class FlakyProxy:
    """A TCP proxy to RabbitMQ that can cut every connection and refuse new ones."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self.up = True

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if not self.up:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._port
            )
            self._writers |= {writer, upstream_writer}
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        finally:
            writer.close()
            self._handlers.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=WAIT)


@pytest.mark.amqp
async def test_amqp_outage_bounds_publish_and_consumers_survive(fresh_amqp_url: str) -> None:
    parts = urlsplit(fresh_amqp_url)
    proxy = FlakyProxy(parts.port or 5672)
    port = await proxy.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, "reconnect_interval=0.2", ""))
    transport = open_transport(url, TOPOLOGY, publish_timeout=0.5)
    try:
        await transport.connect()
        inbox = Inbox()
        consumer = await transport.consume(VIM_QUEUE, inbox.ack)
        await publish_command(transport)
        await inbox.next()

        proxy.cut()
        with pytest.raises(PublishError):  # PublishTimeout, or the last attempt's failure
            await publish_command(transport)
        assert not await transport.ping()

        proxy.up = True
        await eventually(transport.ping)
        after = await publish_command(transport)
        # The restored consumer gets it (maybe after a redelivery of the first message,
        # whose ack may have been lost with the connection).
        while (await inbox.next()).message_id != after:
            pass
        await consumer.stop()
    finally:
        await transport.close()
        await proxy.close()


async def test_amqp_unreachable_broker_fails_to_connect() -> None:
    transport = open_transport("amqp://guest:guest@127.0.0.1:1/", TOPOLOGY, publish_timeout=0.5)
    with pytest.raises(TransportError):
        await transport.connect()
    await transport.close()


# Only the memory broker has join().


async def test_memory_join_waits_until_the_queue_is_drained() -> None:
    broker = MemoryBroker()
    async with open_transport("memory://", TOPOLOGY, memory_broker=broker) as transport:
        inbox = Inbox()
        consumer = await transport.consume(VIM_QUEUE, inbox.ack)
        for _ in range(3):
            await publish_command(transport)
        await broker.join(VIM_QUEUE, timeout=WAIT)
        assert inbox.seen.qsize() == 3
        await consumer.stop()

        async def broken(delivery: Delivery) -> None:
            raise ValueError("handler bug")

        consumer = await transport.consume(VIM_QUEUE, broken)
        await publish_command(transport)
        with pytest.raises(ValueError, match="handler bug"):
            await broker.join(VIM_QUEUE, timeout=WAIT, fail_fast=True)
        await consumer.stop()

        await publish_command(transport)  # nobody consumes: join gives up
        with pytest.raises(TimeoutError):
            await broker.join(VIM_QUEUE, timeout=0.05)


def test_open_transport_chooses_by_scheme() -> None:
    with pytest.raises(ValueError, match="memory_broker"):
        open_transport("memory://", TOPOLOGY)
    with pytest.raises(ValueError, match="scheme"):
        open_transport("kafka://localhost", TOPOLOGY)


@pytest.mark.amqp
async def test_a_transport_that_may_not_declare_checks_the_topology_exists(
    fresh_amqp_url: str,
) -> None:
    with pytest.raises(TopologyMissing, match=r"exchange 'convection\.\w+' does not exist"):
        async with open_transport(fresh_amqp_url, TOPOLOGY, declare=False):
            pass
    async with open_transport(fresh_amqp_url, TOPOLOGY):
        pass  # declared by someone who may
    missing = Topology(exchanges=TOPOLOGY.exchanges, queues=(Queue("test.nobody-declared"),))
    with pytest.raises(TopologyMissing, match=r"queue 'test\.nobody-declared' does not exist"):
        async with open_transport(fresh_amqp_url, missing, declare=False):
            pass
    async with open_transport(fresh_amqp_url, TOPOLOGY, declare=False) as checked:
        assert await checked.queue_depth(VIM_QUEUE) == 0


def test_a_memory_url_names_the_user_its_messages_carry() -> None:
    named = open_transport("memory://convection-vim@", TOPOLOGY, memory_broker=MemoryBroker())
    assert named.user == "convection-vim"
