"""The checker of the fault tests (`tests.faults.checker`), run over the chaos run's system."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from tests.chaos.cluster import ChaosCluster


@dataclass
class CheckerResult:
    """The checker's rendered figures and the ones that are not zero."""

    text: str
    failures: list[str] = field(default_factory=list)


async def run_checker(cluster: ChaosCluster) -> CheckerResult:
    """Run the shared checker; without one in this tree, say so (the local check still runs)."""
    try:
        checker = importlib.import_module("tests.faults.checker")
    except ModuleNotFoundError:
        return CheckerResult("  (tests.faults.checker is not in this tree: local check only)")
    stack = cluster.stack
    assert stack is not None
    report = await checker.check(db_url=stack.pg_url, vim_url=stack.sim, amqp_url=stack.amqp_url)
    text = str(report.render())
    failures = [] if report.clean else [f"checker: {line}" for line in report.problems()]
    return CheckerResult(text, failures)
