"""What a chaos run found: the run's own figures, duplicates absorbed, the state at the end.

Duplicates are counted from the services' logs, which are appended to across restarts: the
Prometheus counters of a SIGKILLed process die with it. The coordinator logs each message
that changed nothing (inbox duplicates, stale replies); a participant logs each command it
answered from its stored outcome instead of running the handler again.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.cluster import COORDINATORS, ChaosCluster
from tests.chaos.driver import Outcome, Run

_COORDINATOR_DUPLICATE = re.compile(r"\b(duplicate|ignored) \S+ for saga \S+ changed nothing")
_PARTICIPANT_DUPLICATE = "answering from the stored"


def duplicates_absorbed(cluster: ChaosCluster, logs: Path) -> Counter[str]:
    """Count the duplicates each kind of service absorbed, from its log."""
    found: Counter[str] = Counter()
    for name in COORDINATORS:
        for match in _COORDINATOR_DUPLICATE.finditer(_read(logs / f"{name}.log")):
            found[f"coordinator {match.group(1)}"] += 1
    for service, names in cluster.adapters.items():
        for name in names:
            text = _read(logs / f"{name}.log")
            found[f"{service}-adapter stored reply"] += text.count(_PARTICIPANT_DUPLICATE)
    return found


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class LocalReport:
    """The figures this run checks itself; every one must be zero."""

    figures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, items: list[str]) -> None:
        """Record figure `name` as the number of `items`, keeping a few as examples."""
        self.figures[name] = len(items)
        if items:
            self.details[name] = items[:10]

    @property
    def clean(self) -> bool:
        """Whether every figure is zero."""
        return not any(self.figures.values())

    def render(self) -> str:
        """The figures one per line, with examples of what is wrong."""
        lines = [f"  {name:<34} {n}" for name, n in self.figures.items()]
        for name, items in self.details.items():
            lines.append(f"  {name}: {', '.join(items)}")
        return "\n".join(lines)


async def local_check(cluster: ChaosCluster, outcomes: dict[str, Outcome]) -> LocalReport:
    """What the checker does not judge: outcomes as the scenarios expect, and no give-ups.

    The checker counts leftovers of compensated and cancelled sagas; no saga of this run
    fails after its pivot, so a failed one must have left nothing either. The checker fails
    dead letters without a reason; here nothing is hostile, so any dead letter is a message
    the system gave up on.
    """
    stack = cluster.stack
    assert stack is not None
    report = LocalReport()
    status = {r["id"]: r["status"] for r in await stack.sql("SELECT id, status FROM sagas")}
    report.add("sagas not ended", sorted(i for i, o in outcomes.items() if o.status is None))
    report.add(
        "sagas ended unexpectedly",
        sorted(
            f"{o.saga_id}={o.status} (want {'|'.join(sorted(o.expected))})"
            for o in outcomes.values()
            if o.status is not None and o.status not in o.expected
        ),
    )
    resources: dict[str, Any] = await stack.sim_json("/admin/resources")
    live: Counter[str] = Counter(
        str(item["saga_id"])
        for kind in ("servers", "networks", "subnets")
        for item in resources[kind]
    )
    failed = [i for i, s in status.items() if s == "failed" and live[i]]
    report.add("failed sagas with VIM leftovers", sorted(f"{i}:{live[i]}" for i in failed))
    dead = await stack.sql("SELECT queue, reason FROM dead_letters")
    report.add("dead letters", [f"{r['queue']}:{r['reason']}" for r in dead])
    return report


def summary(
    run: Run,
    cluster: ChaosCluster,
    *,
    duplicates: Counter[str],
    drain: float,
    local: LocalReport,
    checker: str,
) -> str:
    """The closing summary: sagas by scenario and outcome, the chaos done, what was absorbed."""
    outcomes = run.outcomes.values()
    by_scenario: Counter[tuple[str, str]] = Counter(
        (f"{o.scenario} {o.saga_id.rsplit('/', 1)[-1]}", o.status or "not ended") for o in outcomes
    )
    tally = cluster.tally
    lines = [
        "== chaos summary",
        f"  sagas                              {len(run.outcomes)}",
        *(f"    {s:<30} {st:<20} {n}" for (s, st), n in sorted(by_scenario.items())),
        f"  kills                              {sum(tally.kills.values())}",
        *(f"    {name:<40} {n}" for name, n in sorted(tally.kills.items())),
        f"  broker restarts                    {tally.restarts['broker']}",
        f"  database restarts                  {tally.restarts['database']}",
        f"  services that exited on their own  {len(tally.exits)} {tally.exits or ''}",
        f"  duplicates absorbed                {sum(duplicates.values())}",
        *(f"    {name:<40} {n}" for name, n in sorted(duplicates.items())),
        f"  StartSaga publishes retried        {run.publisher.resent}",
        f"  time to drain                      {drain:.1f}s",
        "== local check",
        local.render(),
        "== checker",
        checker,
    ]
    return "\n".join(lines)
