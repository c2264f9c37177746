"""The coordinator's Prometheus metrics, in a registry of its own (no global state).

Each Coordinator owns one `Metrics`, so several coordinators in one process (tests, the
embedded demo) never collide on metric names; the service exposes its registry over HTTP.

The gauges that describe the whole database (sagas in flight, stuck sagas, the outbox) are
the same number seen from every replica; they are exported only while `database_gauges` is
set, which the one replica holding the gauge lease does, so a sum over replicas counts them
once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from contracts import TERMINAL_STATUSES

if TYPE_CHECKING:
    from coordinator.core import SagaState

TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
"""Saga statuses that end a saga."""
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class _Exported(Collector):
    """Collects its gauges only while `on` (the replica holds the gauge lease)."""

    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = tuple(gauges)
        self.on = True

    def describe(self) -> Iterable[Metric]:
        for gauge in self.gauges:
            yield from gauge.describe()

    def collect(self) -> Iterable[Metric]:
        if not self.on:
            return
        for gauge in self.gauges:
            yield from gauge.collect()


class Metrics:
    """Counters, histograms and gauges of one coordinator."""

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
        self.dead_letters_collected = Counter(
            "convection_dead_letters",
            "Dead letters collected from the dead-letter queues, by source queue and reason "
            "(whoever rejected them: a coordinator, a participant, the broker).",
            ["queue", "reason"],
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
        self.optimistic = Counter(
            "convection_coordinator_optimistic",
            "Messages processed alone that tried the optimistic path (PostgreSQL), by result: "
            "`written`, `duplicate`, `declined` (the locking path ran it: a decision one "
            "statement cannot hold, an ignored or refused event, a parked, unknown or "
            "undefined saga, a reply its saga refuses, a start that is rejected or whose id "
            "was taken meanwhile), or `gave_way` to the locking "
            "path (the saga moved or the id was claimed meanwhile, the database was "
            "unreachable); a high share given way means contention on the same sagas.",
            ["result"],
            registry=r,
        )
        self.outbox_sent = Counter(
            "convection_outbox_sent", "Outbox messages published.", registry=r
        )
        self.outbox_polled = Counter(
            "convection_outbox_polled",
            "Outbox rows the polling relay claimed: on PostgreSQL only rows whose hand-off did "
            "not finish within its lease (a crashed or overloaded replica), so a steady rate "
            "means messages sent twice.",
            registry=r,
        )
        self.outbox_failures = Counter(
            "convection_outbox_failures", "Failed outbox publish attempts.", registry=r
        )
        self.outbox_dead = Counter(
            "convection_outbox_dead", "Outbox rows parked as dead.", registry=r
        )
        self.outbox_backlog = Gauge(
            "convection_outbox_backlog", "Outbox rows waiting to be sent.", registry=None
        )
        self.outbox_oldest_age = Gauge(
            "convection_outbox_oldest_pending_age_seconds",
            "Age of the oldest unsent outbox row.",
            registry=None,
        )
        self.parked = Counter(
            "convection_coordinator_parked_events",
            "Events kept for a coordinator that has the saga's definition version.",
            registry=r,
        )
        self.timers = Counter(
            "convection_coordinator_timers",
            "Timer events fed to sagas, by kind.",
            ["kind"],
            registry=r,
        )
        self.sagas_started = Counter(
            "convection_sagas_started",
            "Sagas started, by saga type.",
            ["saga_type"],
            registry=r,
        )
        self.sagas_finished = Counter(
            "convection_sagas_finished",
            "Sagas that reached a terminal status, by saga type and outcome (that status).",
            ["saga_type", "outcome"],
            registry=r,
        )
        self.step_duration = Histogram(
            "convection_step_duration_seconds",
            "Duration of finished forward steps, by saga type, step (or group) and outcome.",
            ["saga_type", "step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.sagas_in_flight = Gauge(
            "convection_sagas_in_flight",
            "Sagas not yet finished, by status (refreshed from the database on each scrape; "
            "exported by one replica).",
            ["status"],
            registry=None,
        )
        self.sagas_stuck = Gauge(
            "convection_sagas_stuck",
            "Running or compensating sagas with a step past its deadline (one replica).",
            registry=None,
        )
        self._database = _Exported(
            (self.sagas_in_flight, self.sagas_stuck, self.outbox_backlog, self.outbox_oldest_age)
        )
        r.register(self._database)

    @property
    def database_gauges(self) -> bool:
        """Whether the gauges of the whole database are exported by this replica."""
        return self._database.on

    @database_gauges.setter
    def database_gauges(self, on: bool) -> None:
        self._database.on = on

    def record(self, previous: SagaState | None, state: SagaState) -> None:
        """Count what one applied decision changed: a start, an end, finished steps.

        Called by the processor once the transaction committed, for each decision in it, so
        a transaction retried after a conflict counts once, and each end of a saga (also a
        second one, after an operator retry) counts once.
        """
        if previous is None:
            self.sagas_started.labels(state.saga_type).inc()
        if state.status in TERMINAL and (previous is None or previous.status not in TERMINAL):
            self.sagas_finished.labels(state.saga_type, state.status.value).inc()
        before = {s.name: s for s in previous.steps} if previous is not None else {}
        for step in state.steps:
            old = before.get(step.name)
            leg = step.forward
            if leg.finished_at is None or leg.started_at is None:
                continue
            if old is not None and old.forward.finished_at == leg.finished_at:
                continue
            if leg.status.value not in ("succeeded", "failed"):
                continue
            seconds = (leg.finished_at - leg.started_at).total_seconds()
            self.step_duration.labels(
                state.saga_type, step.group or step.name, step.status.value
            ).observe(max(seconds, 0.0))
