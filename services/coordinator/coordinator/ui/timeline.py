"""A saga's timeline: every attempt of every leg as a bar on one time axis, laid out for SVG.

The bars come from the audit log, not from the steps' rows: a row keeps only a leg's last
attempt, the log keeps each one (`step.started` ... `step.retry_scheduled`, then the next
`step.started`), so retries are separate bars. Pure: the page draws what `layout` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from coordinator.core import HistoryEntry, StepState

Leg = Literal["forward", "compensation"]
"""Which way a bar ran: the step itself, or its undoing."""

_PREFIXES: dict[str, Leg] = {"step": "forward", "compensation": "compensation"}
# How an attempt ended, named by the log entry that closed it.
_OUTCOMES = {
    "succeeded": "succeeded",
    "failed": "failed",
    "retry_scheduled": "retried",
    "timed_out": "timed-out",
    "abandoned": "abandoned",
    "withdrawn": "withdrawn",
}
LABEL_WIDTH = 240
"""Pixels left of the axis for the step names."""
PLOT_WIDTH = 720
"""Pixels of the time axis."""
ROW_HEIGHT = 26
"""Pixels per step."""
TOP = 24
"""Pixels above the first row, for the axis labels."""


@dataclass(frozen=True)
class Bar:
    """One attempt of one leg: when it ran and how it ended (`running`: not yet)."""

    step: str
    leg: Leg
    attempt: int
    start: datetime
    end: datetime | None
    outcome: str


@dataclass(frozen=True)
class BarBox:
    """A bar placed on the drawing, with its offset from the saga's start in milliseconds."""

    bar: Bar
    x: float
    y: float
    width: float
    offset_ms: int
    seconds: float
    undo_order: int = 0
    """For a compensation: which one it was to start (1 the first), else 0."""


@dataclass(frozen=True)
class RowBox:
    """A step's row: its label and, for a step of a group, the group's name."""

    step: str
    group: str | None
    y: float
    shaded: bool


@dataclass(frozen=True)
class Tick:
    """A mark on the time axis."""

    x: float
    label: str


@dataclass(frozen=True)
class Layout:
    """Everything the timeline's SVG draws."""

    width: int
    height: int
    rows: list[RowBox]
    bars: list[BarBox]
    ticks: list[Tick]
    span_seconds: float


def bars(history: Sequence[HistoryEntry]) -> list[Bar]:
    """Return every leg attempt the log records, in the order they started."""
    opened: dict[tuple[str, Leg], tuple[int, datetime]] = {}
    out: list[Bar] = []
    for entry in history:
        prefix, _, what = entry.kind.partition(".")
        leg = _PREFIXES.get(prefix)
        if leg is None or entry.step is None:
            continue
        key = (entry.step, leg)
        if what == "started":
            if key in opened:
                # A start without an end before it: the earlier attempt was superseded.
                attempt, start = opened.pop(key)
                out.append(Bar(entry.step, leg, attempt, start, entry.at, "superseded"))
            opened[key] = (entry.attempt or 1, entry.at)
        elif key in opened and what in _OUTCOMES:
            attempt, start = opened.pop(key)
            out.append(Bar(entry.step, leg, attempt, start, entry.at, _OUTCOMES[what]))
    out.extend(
        Bar(step, leg, a, start, None, "running") for (step, leg), (a, start) in opened.items()
    )
    return sorted(out, key=lambda b: b.start)


def layout(
    steps: Sequence[StepState], history: Sequence[HistoryEntry], *, began: datetime, now: datetime
) -> Layout:
    """Place each step on a row (in the saga's order) and each attempt on the time axis."""
    found = bars(history)
    ends = [b.end or now for b in found]
    last = max([began, *ends])
    span = max((last - began).total_seconds(), 0.001)
    rows: list[RowBox] = []
    index: dict[str, int] = {}
    groups: list[str | None] = []
    for step in steps:
        index[step.name] = len(rows)
        if step.group not in groups:
            groups.append(step.group)
        # Shading alternates per stage group, so the steps of one group read as one block.
        shaded = groups.index(step.group) % 2 == 1 if step.group else False
        rows.append(RowBox(step.name, step.group, TOP + len(rows) * ROW_HEIGHT, shaded))
    boxes = []
    for bar in found:
        row = index.get(bar.step)
        if row is None:
            continue
        start = (bar.start - began).total_seconds()
        seconds = ((bar.end or now) - bar.start).total_seconds()
        x = LABEL_WIDTH + PLOT_WIDTH * start / span
        width = max(PLOT_WIDTH * seconds / span, 2.0)
        # A compensation sits in the lower half of its row, so it never hides the forward bar.
        y = rows[row].y + (ROW_HEIGHT / 2 if bar.leg == "compensation" else 3)
        boxes.append(BarBox(bar, x, y, width, round(start * 1000), round(seconds, 3)))
    # Numbered in the order they started, so reading the labels shows the reverse order.
    undos = sorted((b for b in boxes if b.bar.leg == "compensation"), key=lambda b: b.bar.start)
    order = {id(b): i for i, b in enumerate(undos, 1)}
    boxes = [replace(b, undo_order=order.get(id(b), 0)) for b in boxes]
    ticks = [
        Tick(LABEL_WIDTH + PLOT_WIDTH * i / 4, _offset(timedelta(seconds=span * i / 4)))
        for i in range(5)
    ]
    height = TOP + len(rows) * ROW_HEIGHT + 8
    return Layout(LABEL_WIDTH + PLOT_WIDTH + 40, height, rows, boxes, ticks, span)


def _offset(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 10:
        # Short sagas: enough digits that no two ticks read the same.
        return f"+{seconds:.2f}s"
    if seconds < 60:
        return f"+{seconds:.1f}s"
    if seconds < 3600:
        return f"+{seconds / 60:.1f}m"
    return f"+{seconds / 3600:.1f}h"
