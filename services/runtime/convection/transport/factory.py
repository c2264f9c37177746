"""Choose a transport by URL: `amqp://` and `amqps://` for RabbitMQ, `memory://` in-process."""

from __future__ import annotations

from urllib.parse import urlsplit

from contracts.topology import Topology
from convection.transport.amqp import AmqpTransport
from convection.transport.base import Transport
from convection.transport.memory import MemoryBroker, MemoryTransport


def open_transport(
    url: str,
    topology: Topology,
    *,
    memory_broker: MemoryBroker | None = None,
    publish_timeout: float = 5.0,
    declare: bool = True,
) -> Transport:
    """Return an unconnected transport for `url`; `connect()` it or use `async with`.

    Args:
        url: `amqp://user:password@host:port/vhost` (or `amqps://`), or `memory://`.
        topology: What `connect()` declares.
        memory_broker: The in-process broker a `memory://` transport uses; the
            components of one process share it, so it is passed, never global.
        publish_timeout: Seconds one publish attempt may wait for its confirmation.
        declare: Declare the topology at connect; False only checks that it exists (for a
            broker user without configure permission).

    Raises:
        ValueError: The scheme is unknown, or `memory://` comes without a broker.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("amqp", "amqps"):
        return AmqpTransport(url, topology, publish_timeout=publish_timeout, declare=declare)
    if scheme == "memory":
        if memory_broker is None:
            raise ValueError("a memory:// transport needs memory_broker=MemoryBroker()")
        # `memory://NAME@` publishes as user NAME, as an AMQP URL's user does.
        return MemoryTransport(memory_broker, topology, user=parts.username or None)
    # Never echo the URL: it may carry a password.
    raise ValueError(f"unsupported transport URL scheme {scheme!r}")
