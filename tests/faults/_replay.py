"""Replaying a saga's history through the engine's transition tables (part of the checker).

Every status change the engine makes is logged in `saga_history` with `from_status` and
`to_status`: `saga.status` (and `saga.created`) for the saga, `step.*` for a forward leg,
`compensation.*` for a compensation leg. Replaying them in order tells two kinds of
breakage apart from the engine's own checks, which a crash or a lost update could bypass:

* a move the tables (`coordinator.core.states`) do not allow;
* a gap: an entry whose `from_status` is not where the previous entry left that saga or
  leg, unless the unlogged move between them is itself allowed (a few moves are not logged
  on purpose: a payload that cannot be built goes running -> failed with only the second
  logged; an operator retry resets legs).

The saga row's final status must also be where its history ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from contracts import SagaStatus
from coordinator.core.states import (
    COMP_TRANSITIONS,
    SAGA_TRANSITIONS,
    STEP_TRANSITIONS,
    CompStatus,
    StepStatus,
)

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class Entry:
    """The part of one `saga_history` row that the replay reads."""

    kind: str
    step: str | None
    from_status: str | None
    to_status: str | None


def _table(kind: str) -> tuple[Mapping[Any, frozenset[Any]], Callable[[str], Any]] | None:
    if kind in ("saga.status", "saga.created"):
        return SAGA_TRANSITIONS, SagaStatus
    if kind.startswith("step."):
        return STEP_TRANSITIONS, StepStatus
    if kind.startswith("compensation."):
        return COMP_TRANSITIONS, CompStatus
    return None


def _allowed(table: Mapping[Any, frozenset[Any]], old: Any, new: Any) -> bool:
    return old == new or new in table.get(old, frozenset())


def illegal_transitions(
    saga_id: str, history: Sequence[Entry], final_status: str | None
) -> list[str]:
    """Return a description of every transition of one saga that the tables call illegal."""
    found: list[str] = []
    where: dict[tuple[str, str | None], Any] = {}
    for index, entry in enumerate(history):
        picked = _table(entry.kind)
        if picked is None or entry.to_status is None:
            if entry.kind.startswith("operator."):
                # Operators reset legs without logging each one: forget what we knew.
                where = {k: v for k, v in where.items() if k[0] == "saga"}
            continue
        table, parse = picked
        scope = (
            ("saga", None)
            if entry.kind.startswith("saga.")
            else (entry.kind.split(".")[0], entry.step)
        )
        try:
            new = parse(entry.to_status)
            old = parse(entry.from_status) if entry.from_status is not None else None
        except ValueError:
            found.append(f"{saga_id} #{index} {entry.kind}: unknown status {entry}")
            continue
        if entry.kind == "saga.created":
            if new is not SagaStatus.PENDING or scope in where:
                found.append(f"{saga_id} #{index}: created as {new} (or twice)")
            where[scope] = new
            continue
        label = f"{entry.kind}{f' {entry.step}' if entry.step else ''}"
        if old is None:
            found.append(f"{saga_id} #{index} {label}: no from_status")
        elif not _allowed(table, old, new):
            found.append(f"{saga_id} #{index} {label}: {old} -> {new} is not allowed")
        known = where.get(scope)
        if known is None and scope[0] == "step":
            known = StepStatus.PENDING
        if known is None and scope[0] == "compensation":
            known = CompStatus.NONE
        if old is not None and known is not None and not _allowed(table, known, old):
            found.append(f"{saga_id} #{index} {label}: from {old}, but it was {known}")
        where[scope] = new
    last = where.get(("saga", None))
    if final_status is not None and last is not None and str(last) != final_status:
        found.append(f"{saga_id}: history ends in {last}, the row says {final_status}")
    if final_status is not None and last is None and history:
        found.append(f"{saga_id}: history has no saga.created")
    return found


def replay_all(rows: Iterable[Mapping[str, Any]], statuses: Mapping[str, str]) -> list[str]:
    """Replay `saga_history` rows (ordered by saga, then id) of every saga in `statuses`."""
    by_saga: dict[str, list[Entry]] = {saga_id: [] for saga_id in statuses}
    for row in rows:
        by_saga.setdefault(row["saga_id"], []).append(
            Entry(row["kind"], row["step"], row["from_status"], row["to_status"])
        )
    found: list[str] = []
    for saga_id, history in by_saga.items():
        found.extend(illegal_transitions(saga_id, history, statuses.get(saga_id)))
    return found
