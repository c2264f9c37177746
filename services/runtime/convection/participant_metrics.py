"""A participant's Prometheus metrics, in a registry of its own (no global state).

Each `Participant` counts into a `ParticipantMetrics`; a process running several participants
passes them one, and serves its registry on `CONVECTION_METRICS_PORT`
(`convection.participant_main`). The outcomes of a command:

    succeeded, failed, retryable   the handler ran (its run time is observed too)
    duplicate                      answered from the stored outcome, the handler not run
    invalid_payload                the payload does not validate: `failed` without running
    dead_lettered                  not a command for this service, or its handler kept crashing
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("succeeded", "failed", "retryable", "duplicate", "invalid_payload", "dead_lettered")
"""The outcomes a command is counted under."""
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Buckets of the handlers' run time, in seconds."""


class ParticipantMetrics:
    """Counters and a histogram of the commands one process's participants handled."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "convection_participant_commands",
            "Commands handled, by service, action and outcome.",
            ["service", "action", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "convection_participant_command_duration_seconds",
            "Run time of the handlers, by service, action and outcome.",
            ["service", "action", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "convection_participant_dead_letters",
            "Commands this participant dead-lettered, by service and reason.",
            ["service", "reason"],
            registry=r,
        )
        self.down = Gauge(
            "convection_participant_dependency_down",
            "1 while a dependency (the database) is unreachable and deliveries are held.",
            ["service", "dependency"],
            registry=r,
        )

    def handled(
        self, service: str, action: str, outcome: str, seconds: float | None = None
    ) -> None:
        """Count one command's outcome, and the handler's run time when it ran."""
        self.commands.labels(service, action, outcome).inc()
        if seconds is not None:
            self.duration.labels(service, action, outcome).observe(max(seconds, 0.0))

    def dead_lettered(self, service: str, action: str, reason: str) -> None:
        """Count a command dead-lettered with `reason` (action "" when it names none known)."""
        self.handled(service, action, "dead_lettered")
        self.dead_letters.labels(service, reason).inc()

    def dependency_down(self, service: str, dependency: str, down: bool) -> None:
        """Record that `dependency` went down (deliveries held) or came back."""
        self.down.labels(service, dependency).set(1 if down else 0)
