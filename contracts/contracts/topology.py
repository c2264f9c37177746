"""Exchange, queue and routing-key names: a public interface that other teams' clients use.

Pure data: the exchange names and the naming rules. Which services exist is not written here:
a coordinator derives them from the sagas it loads (`coordinator_topology`), a participant
declares its own queue (`participant_topology`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

SAGAS_EXCHANGE = "convection.sagas"
"""Direct exchange for StartSaga, CancelSaga and the coordinator's internal wake-ups."""
COMMANDS_EXCHANGE = "convection.commands"
"""Direct exchange for step commands; the routing key is the participant service's name."""
REPLIES_EXCHANGE = "convection.replies"
"""Direct exchange for step replies to the coordinator."""
EVENTS_EXCHANGE = "convection.events"
"""Topic exchange for lifecycle events, routing key `saga.<saga_type>.<status>`."""
DEAD_LETTER_EXCHANGE = "convection.dead"
"""Direct exchange for dead letters; the routing key is the source queue's name."""

START_ROUTING_KEY = "saga.start"
"""Routing key of StartSaga on `convection.sagas`."""
CANCEL_ROUTING_KEY = "saga.cancel"
"""Routing key of CancelSaga on `convection.sagas`."""
WAKE_ROUTING_KEY = "saga.wake"
"""Routing key of the coordinator's own wake-ups (a resource lock was granted)."""
REPLY_ROUTING_KEY = "reply"
"""Routing key of step replies on `convection.replies`."""

COORDINATOR_SAGAS_QUEUE = "convection.coordinator.sagas"
"""Queue the coordinator replicas share for StartSaga, CancelSaga and wake-ups."""
COORDINATOR_REPLIES_QUEUE = "convection.coordinator.replies"
"""Queue the coordinator replicas share for step replies."""

REASON_HEADER = "x-convection-reason"
"""Header that carries why a message was dead-lettered."""
SOURCE_QUEUE_HEADER = "x-convection-source-queue"
"""Header that names the queue a dead letter came from."""
ERROR_HEADER = "x-convection-error"
"""Header of a dead letter whose handler kept crashing: `<ExceptionType>: <message>`."""
ORIGINAL_EXCHANGE_HEADER = "x-convection-original-exchange"
"""Header that names the exchange a dead letter was first published to."""
ORIGINAL_ROUTING_KEY_HEADER = "x-convection-original-routing-key"
"""Header that names the routing key a dead letter was first published with."""
DEAD_AT_HEADER = "x-convection-dead-at"
"""Header with the time (RFC 3339, UTC) a message was dead-lettered."""
REPLAY_OF_HEADER = "x-convection-replay-of"
"""Header of a replayed dead letter: the message id of the message that died."""
DEAD_LETTER_HEADERS = (
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    ERROR_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    DEAD_AT_HEADER,
)
"""The headers a dead-letter copy gets, which a replay leaves out again."""
FORGED = "forged"
"""Dead-letter reason of a message from a broker user that may not send it."""

HANDLER_CRASHED = "handler_crashed"
"""Dead-letter reason of a message whose handler raised on every delivery up to the limit."""

DELIVERY_LIMIT = 10
"""Redeliveries before RabbitMQ dead-letters a message a consumer keeps failing on."""


def command_queue(service: str) -> str:
    """Return the durable queue that a participant service's instances share."""
    return f"convection.commands.{service}"


def dead_letter_queue(queue: str) -> str:
    """Return the dead-letter queue that holds what was rejected from `queue`."""
    return f"{queue}.dead"


def event_routing_key(saga_type: str, status: str) -> str:
    """Return the routing key of a lifecycle event (bind `saga.#.failed` to see all failures)."""
    return f"saga.{saga_type}.{status}"


ExchangeType = Literal["direct", "topic"]


@dataclass(frozen=True)
class Exchange:
    """An exchange to declare."""

    name: str
    type: ExchangeType


@dataclass(frozen=True)
class Binding:
    """A binding of a queue to an exchange with a routing key."""

    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Queue:
    """A durable quorum queue with its bindings; its dead letters go to `dead_letter_queue`."""

    name: str
    bindings: tuple[Binding, ...] = field(default=())
    delivery_limit: int = DELIVERY_LIMIT

    @property
    def dead_letter(self) -> str:
        """Name of this queue's dead-letter queue."""
        return dead_letter_queue(self.name)


@dataclass(frozen=True)
class Topology:
    """Everything a process declares at start; declaring it twice is harmless."""

    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]

    def queue(self, name: str) -> Queue:
        """Return the queue called `name`, or raise KeyError."""
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)

    def delivery_limit(self, name: str) -> int | None:
        """Return the delivery limit of queue `name`: None for a dead-letter queue (it has none).

        A queue this topology does not declare is assumed to have the protocol's default.
        """
        for queue in self.queues:
            if queue.name == name:
                return queue.delivery_limit
            if queue.dead_letter == name:
                return None
        return DELIVERY_LIMIT


EXCHANGES = (
    Exchange(SAGAS_EXCHANGE, "direct"),
    Exchange(COMMANDS_EXCHANGE, "direct"),
    Exchange(REPLIES_EXCHANGE, "direct"),
    Exchange(EVENTS_EXCHANGE, "topic"),
    Exchange(DEAD_LETTER_EXCHANGE, "direct"),
)
"""Every exchange of the protocol."""


def coordinator_queues() -> tuple[Queue, ...]:
    """Return the queues the coordinator consumes."""
    return (
        Queue(
            COORDINATOR_SAGAS_QUEUE,
            (
                Binding(SAGAS_EXCHANGE, START_ROUTING_KEY),
                Binding(SAGAS_EXCHANGE, CANCEL_ROUTING_KEY),
                Binding(SAGAS_EXCHANGE, WAKE_ROUTING_KEY),
            ),
        ),
        Queue(COORDINATOR_REPLIES_QUEUE, (Binding(REPLIES_EXCHANGE, REPLY_ROUTING_KEY),)),
    )


def service_queue(service: str) -> Queue:
    """Return the command queue of one participant service."""
    return Queue(command_queue(service), (Binding(COMMANDS_EXCHANGE, service),))


def coordinator_topology(services: Iterable[str]) -> Topology:
    """Return what a coordinator declares: exchanges, its queues, its services' queues.

    The command queue of every service its sagas use is declared by the coordinator too, so
    a command is routable before a participant of that service ever started.
    """
    return Topology(
        exchanges=EXCHANGES,
        queues=coordinator_queues() + tuple(service_queue(s) for s in sorted(set(services))),
    )


def participant_topology(service: str) -> Topology:
    """Return what a participant of `service` declares: every exchange and its own queue."""
    return Topology(exchanges=EXCHANGES, queues=(service_queue(service),))
