"""The broker socket's writer: one turn's writes go out in one send, in order, none held back."""

from __future__ import annotations

import asyncio

from convection.transport import amqp_socket
from convection.transport.amqp_socket import CoalescingWriter


class Recorder(asyncio.WriteTransport):
    """A transport that records each write it is given (one per system call, for real)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Record one send."""
        self.sent.append(bytes(data))

    def close(self) -> None:
        """Record the close."""
        self.closed = True

    def is_closing(self) -> bool:
        """Tell whether close was called."""
        return self.closed

    def get_write_buffer_size(self) -> int:
        """Nothing is ever buffered here."""
        return 0


def writer() -> tuple[CoalescingWriter, Recorder]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = Recorder()
    return CoalescingWriter(transport, protocol, reader, loop), transport


async def test_one_turns_writes_go_out_together_in_order_at_its_end() -> None:
    stream, transport = writer()
    stream.write(b"publish-1;")
    stream.write(b"publish-2;")
    stream.writelines([b"ack-1;", b"ack-2;"])
    await stream.drain()  # flow control only: it does not hold the frames back, nor send them
    assert transport.sent == []
    await asyncio.sleep(0)
    assert transport.sent == [b"publish-1;publish-2;ack-1;ack-2;"]
    stream.write(b"next")
    await asyncio.sleep(0)
    assert transport.sent[1:] == [b"next"]
    stream.close()


async def test_a_large_batch_goes_out_at_once_and_close_sends_what_is_left() -> None:
    stream, transport = writer()
    stream.write(b"x" * amqp_socket.FLUSH_AT)
    assert transport.sent == [b"x" * amqp_socket.FLUSH_AT]
    stream.write(b"close-frame")
    stream.close()
    assert transport.sent[-1] == b"close-frame"
    assert transport.closed
    await asyncio.sleep(0)  # the turn's scheduled flush finds nothing more to send
    assert len(transport.sent) == 2
