"""The fault checker: after a fault test, read every party's own records and count what broke.

`check(...)` reads the coordinator's tables, the VIM simulator's ledger and live resources
(its admin API), the participants' stored replies and the dead-letter queues, and returns a
`CheckReport`. Every figure must be zero for a pass:

    lost                 sagas started (the test says which) that have no saga row
    stuck                non-terminal sagas with nothing that will move them: no reply
                         awaited (a running leg has a deadline), no retry due, no lock
                         waited for, not parked, no unsent command
    duplicate_effects    creates the VIM applied more than once for one idempotency key
    leftovers            compensated or cancelled sagas that still own a VIM resource
    needless_undo        compensations with no effect to undo: a compensation leg that ran
                         for a step that cannot have had an effect, or a VIM delete of a
                         resource its ledger never created
    illegal_transitions  moves in the sagas' histories the transition tables forbid
                         (replayed in `tests.faults._replay`)
    unsent_outbox        outbox rows not sent (or parked dead) after recovery
    dead_without_reason  dead letters without `x-convection-reason`: in the collected
                         `dead_letters` table, or still waiting in a `.dead` queue

The report also carries figures that are not failures (`info`): sagas by status, sagas in
flight for a visible reason, dead letters by reason, messages still queued. The details list
which sagas and rows each figure counts, for the failure message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from contracts import topology
from contracts.saga import TERMINAL_STATUSES
from tests.faults import _sources
from tests.faults._replay import replay_all

FIGURES = (
    "lost",
    "stuck",
    "duplicate_effects",
    "leftovers",
    "needless_undo",
    "illegal_transitions",
    "unsent_outbox",
    "dead_without_reason",
)
"""The failure figures, in the order they are printed."""
TERMINAL = frozenset(str(s) for s in TERMINAL_STATUSES)
"""Saga statuses that never change on their own."""
SERVICES = ("vim", "ro", "lcm")
"""The participant services whose queues the checker reads by default."""
_UNDONE = ("compensated", "cancelled")


@dataclass
class CheckReport:
    """What the checker counted: failure figures (all must be 0), details, information."""

    figures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIGURES, 0))
    details: dict[str, list[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: str, items: Iterable[str]) -> None:
        """Count `items` under `figure` and keep them as its details."""
        found = list(items)
        self.figures[figure] += len(found)
        self.details.setdefault(figure, []).extend(found)

    @property
    def clean(self) -> bool:
        """Tell whether every failure figure is zero."""
        return not any(self.figures.values())

    def render(self, *, details: int = 5) -> str:
        """One line per figure (failures first, then information), with a few details each."""
        lines = []
        for name in FIGURES:
            count = self.figures[name]
            shown = self.details.get(name, [])[:details] if count else []
            more = f" (+{count - len(shown)} more)" if count > len(shown) else ""
            lines.append(
                f"checker {name:<20} {count}" + (f"  {'; '.join(shown)}{more}" if shown else "")
            )
        lines.extend(f"checker {name:<20} {value}" for name, value in self.info.items())
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """Raise AssertionError with every figure unless all failure figures are zero."""
        if not self.clean:
            raise AssertionError("the checker found breakage:\n" + self.render(details=20))


@dataclass(frozen=True)
class Sources:
    """Where the checker reads from.

    Args:
        db_dsn: The coordinator's database (a libpq/asyncpg DSN or a SQLAlchemy asyncpg URL).
        sim_url: The VIM simulator's base URL (its admin API).
        amqp_url: The broker (vhost) whose dead-letter queues to read; None skips them.
        participant_dsns: The participants' databases (default: the coordinator's).
        queues: The source queues whose `.dead` queues to read (default: the coordinator's
            two and the command queues of `SERVICES`).
    """

    db_dsn: str
    sim_url: str
    amqp_url: str | None = None
    participant_dsns: Sequence[str] = ()
    queues: Sequence[str] = ()

    def source_queues(self) -> list[str]:
        """The queues whose dead letters are read."""
        return list(self.queues) or [
            topology.COORDINATOR_SAGAS_QUEUE,
            topology.COORDINATOR_REPLIES_QUEUE,
            *(topology.command_queue(s) for s in SERVICES),
        ]


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def check(sources: Sources, *, started: Iterable[str] = ()) -> CheckReport:
    """Read every source and count what broke; `started` are the saga ids the test started."""
    report = CheckReport()
    conn = await asyncpg.connect(_dsn(sources.db_dsn), timeout=30)
    try:
        sagas = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM sagas")}
        report.add("lost", sorted(set(started) - set(sagas)))
        counts: dict[str, int] = {}
        for status in sagas.values():
            counts[status] = counts.get(status, 0) + 1
        report.info["sagas"] = len(sagas)
        report.info["by_status"] = dict(sorted(counts.items()))
        stuck, moving = await _sources.stuck(conn, TERMINAL)
        report.add("stuck", stuck)
        report.info["in_flight"] = len(moving)
        history = await conn.fetch(
            "SELECT saga_id, kind, step, from_status, to_status FROM saga_history"
            " ORDER BY saga_id, id"
        )
        report.add("illegal_transitions", replay_all(history, sagas))
        report.add("needless_undo", await _sources.needless_compensations(conn))
        report.add("unsent_outbox", await _sources.unsent_outbox(conn))
        dead = await _sources.collected_dead_letters(conn)
    finally:
        await conn.close()
    report.info["dead_letters"] = dict(sorted(dead.by_reason.items()))
    report.add("dead_without_reason", dead.without_reason)
    await _check_vim(report, sources.sim_url, sagas)
    for dsn in sources.participant_dsns or [sources.db_dsn]:
        report.info.setdefault("participant_replies", 0)
        report.info["participant_replies"] += await _sources.participant_replies(_dsn(dsn))
    if sources.amqp_url is not None:
        waiting = await _sources.dead_queues(sources.amqp_url, sources.source_queues())
        report.add("dead_without_reason", waiting.without_reason)
        report.info["dead_queued"] = waiting.total
        report.info["queued"] = waiting.queued
    return report


async def _check_vim(report: CheckReport, sim_url: str, sagas: Mapping[str, str]) -> None:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{sim_url}/admin/ledger") as resp:
            resp.raise_for_status()
            ledger: list[dict[str, Any]] = await resp.json()
        async with http.get(f"{sim_url}/admin/resources") as resp:
            resp.raise_for_status()
            live: dict[str, list[dict[str, Any]]] = await resp.json()
    report.add("duplicate_effects", duplicate_creates(ledger))
    report.add("needless_undo", deletes_without_create(ledger))
    report.add("leftovers", leftovers(live, sagas))
    report.info["vim_effects"] = len(ledger)
    report.info["vim_live"] = sum(len(rows) for rows in live.values())


def duplicate_creates(ledger: Iterable[Mapping[str, Any]]) -> list[str]:
    """Return every (project, idempotency key, create) that the VIM applied more than once."""
    seen: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for entry in ledger:
        key = entry.get("idempotency_key")
        if key and str(entry["operation"]).startswith("create_"):
            seen.setdefault((entry["project_id"], key, entry["operation"]), []).append(entry)
    return [
        f"{entries[0]['saga_id']}/{entries[0]['step']}: {op} x{len(entries)} under {key}"
        for (_, key, op), entries in seen.items()
        if len(entries) > 1
    ]


def deletes_without_create(ledger: Iterable[Mapping[str, Any]]) -> list[str]:
    """Return every VIM delete of a resource that the ledger shows no create of."""
    created: set[tuple[str, str]] = set()
    found = []
    for entry in ledger:
        operation, kind = str(entry["operation"]), str(entry["resource_type"])
        if operation.startswith("create_"):
            created.add((kind, entry["resource_id"]))
        elif operation.startswith("delete_") and (kind, entry["resource_id"]) not in created:
            found.append(f"{entry['saga_id']}/{entry['step']}: {operation} {entry['resource_id']}")
    return found


def leftovers(
    live: Mapping[str, Iterable[Mapping[str, Any]]], sagas: Mapping[str, str]
) -> list[str]:
    """Return every live VIM resource that belongs to a compensated or cancelled saga."""
    return [
        f"{row['saga_id']} ({sagas[row['saga_id']]}): {kind[:-1]} {row['id']} {row['name']}"
        for kind, rows in live.items()
        for row in rows
        if row.get("saga_id") in sagas and sagas[row["saga_id"]] in _UNDONE
    ]
