"""The checker of the fault tests (`tests.faults.checker`), run over the chaos run's system."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.chaos.cluster import ChaosCluster
from tests.faults.checker import FIGURES, Sources, check


@dataclass
class CheckerResult:
    """The checker's rendered figures and the ones that are not zero."""

    text: str
    figures: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def run_checker(cluster: ChaosCluster, started: Iterable[str]) -> CheckerResult:
    """Run the shared checker over the coordinator's tables, the VIM and the broker."""
    stack = cluster.stack
    assert stack is not None
    sources = Sources(db_dsn=stack.dsn, sim_url=stack.sim, amqp_url=stack.amqp_url)
    report = await check(sources, started=started)
    failures = [
        f"checker {name}: {report.figures[name]} ({'; '.join(report.details.get(name, [])[:5])})"
        for name in FIGURES
        if report.figures[name]
    ]
    return CheckerResult(report.render(), dict(report.figures), failures)
