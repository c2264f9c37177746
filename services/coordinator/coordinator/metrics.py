"""The coordinator's Prometheus metrics, in a registry of its own (no global state).

Each Coordinator owns one `Metrics`, so several coordinators in one process (tests, the
embedded demo) never collide on metric names; the service exposes its registry over HTTP.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Counters and gauges of one coordinator."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "convection_coordinator_messages",
            "Messages handled, by queue and outcome.",
            ["queue", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "convection_coordinator_dead_letters",
            "Messages rejected to a dead-letter queue, by reason.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "convection_coordinator_duplicates",
            "Duplicate or stale messages that changed nothing, by kind.",
            ["kind"],
            registry=r,
        )
        self.transaction_retries = Counter(
            "convection_coordinator_transaction_retries",
            "Transactions retried after a transient database error.",
            registry=r,
        )
        self.outbox_sent = Counter(
            "convection_outbox_sent", "Outbox messages published.", registry=r
        )
        self.outbox_failures = Counter(
            "convection_outbox_failures", "Failed outbox publish attempts.", registry=r
        )
        self.outbox_dead = Counter(
            "convection_outbox_dead", "Outbox rows parked as dead.", registry=r
        )
        self.outbox_backlog = Gauge(
            "convection_outbox_backlog", "Outbox rows waiting to be sent.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "convection_outbox_oldest_pending_age_seconds",
            "Age of the oldest unsent outbox row.",
            registry=r,
        )
        self.timers = Counter(
            "convection_coordinator_timers",
            "Timer events fed to sagas, by kind.",
            ["kind"],
            registry=r,
        )
