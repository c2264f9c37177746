"""The broker connection's socket: what one turn of the event loop writes goes in one send.

aiormq writes every frame (a publish, an ack, a heartbeat) to the socket as it comes, one
system call each. On loopback and in virtual machines a send is dear: it runs the receiver's
side of TCP and wakes the broker, a context switch or an inter-processor interrupt each time.
The coordinator's relay publishes a batch at once and a participant acks and replies in the
same turn, so their frames can share a send: here they are gathered while the loop runs its
ready callbacks and sent at the end of that turn (`loop.call_soon`), in order, before the loop
waits for anything. Nothing waits longer than one turn, and nothing is acknowledged early: a
publish is confirmed by the broker, not by the send.

Flow control: `drain` still waits while the socket's buffer is above its high-water mark, but
what was gathered this turn is not in that buffer yet, so up to `FLUSH_AT` bytes may sit past
the mark for a turn (harmless: a publish waits for the broker's confirm, not for the send);
more than `FLUSH_AT` bytes gathered are sent at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
from aiormq.connection import SSLContextProvider, TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

FLUSH_AT = 256 * 1024
"""Bytes gathered that are sent without waiting for the end of the turn."""


class CoalescingWriter(asyncio.StreamWriter):
    """A stream writer that sends the writes of one event-loop turn in one system call."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._event_loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Gather `data`; it is sent at the end of this turn of the loop."""
        if not self._pending:
            self._event_loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()

    def writelines(self, data: Any) -> None:
        """Gather each of `data`'s chunks (see `write`)."""
        for chunk in data:
            self.write(chunk)

    def flush(self) -> None:
        """Send what is gathered now."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        super().write(data)

    def write_eof(self) -> None:
        """Send what is gathered, then close the write side."""
        self.flush()
        super().write_eof()

    def close(self) -> None:
        """Send what is gathered, then close."""
        self.flush()
        super().close()


class CoalescingTransportFactory(TransportFactory):
    """aiormq's way to open the socket, with a `CoalescingWriter` on it (TCP or TLS)."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the broker at `url`; return the stream reader and the writer."""
        provider: SSLContextProvider | None = kwargs.pop("ssl_context_provider", None)
        ssl = await provider.get_context() if provider and url.scheme == "amqps" else None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol,
                host=url.host or "localhost",
                port=url.port or 5672,
                ssl=ssl,
                **kwargs,
            )
        except OSError as exc:
            # What aiormq's own factories raise, so its reconnection treats it the same.
            raise AMQPConnectionError(*exc.args) from exc
        return reader, CoalescingWriter(transport, protocol, reader, loop)


class RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection whose sockets, the first and each reconnection's, coalesce."""

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any):
        super().__init__(url, loop, **kwargs)
        self.kwargs["transport_factory"] = CoalescingTransportFactory()
