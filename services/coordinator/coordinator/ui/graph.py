"""A saga definition laid out as a graph for SVG: stages top to bottom, a group side by side.

Each stage is a row; a parallel group's steps stand next to each other in a box, a for-each
group is one box standing for one step per item (run side by side). Every step shows its
action and its compensation; the pivot is marked, and so are the steps after it (retried,
never compensated). Pure: the page draws what `layout` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagas import ForEach, Parallel, Saga, Step, StepKind

NODE_WIDTH = 210
"""Pixels of one step's box."""
NODE_HEIGHT = 58
"""Pixels of one step's box."""
GAP = 24
"""Pixels between boxes of one stage."""
STAGE_HEIGHT = 104
"""Pixels from one stage's top to the next."""
MARGIN = 20
"""Pixels around the drawing."""


@dataclass(frozen=True)
class Node:
    """One step's box."""

    name: str
    action: str
    service: str
    kind: str
    compensation: str | None
    after_pivot: bool
    x: float
    y: float


@dataclass(frozen=True)
class Group:
    """The box around a group's steps: `parallel` or `for_each`."""

    name: str
    grouping: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Edge:
    """An arrow from the bottom of one box to the top of a box of the next stage."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Graph:
    """Everything the definition's SVG draws."""

    width: float
    height: float
    nodes: list[Node]
    groups: list[Group]
    edges: list[Edge]


def _stage_steps(stage: Step | Parallel | ForEach[Any, Any]) -> tuple[list[Step], Group | None]:
    if isinstance(stage, Step):
        return [stage], None
    if isinstance(stage, Parallel):
        return list(stage.steps), Group(stage.name, "parallel", 0, 0, 0, 0)
    return [stage.step], Group(stage.name, "for_each", 0, 0, 0, 0)


def layout(saga: Saga[Any]) -> Graph:
    """Lay out `saga`'s stages, groups, pivot and compensations."""
    stages = [_stage_steps(stage) for stage in saga.stages]
    widest = max((len(steps) for steps, _ in stages), default=1)
    width = 2 * MARGIN + 2 * GAP + widest * NODE_WIDTH + (widest - 1) * GAP
    nodes: list[Node] = []
    groups: list[Group] = []
    edges: list[Edge] = []
    previous: list[Node] = []
    past_pivot = False
    for row, (steps, group) in enumerate(stages):
        y = MARGIN + GAP + row * STAGE_HEIGHT
        span = len(steps) * NODE_WIDTH + (len(steps) - 1) * GAP
        left = (width - span) / 2
        placed = []
        for i, step in enumerate(steps):
            kind = step.resolved_kind
            node = Node(
                name=step.name,
                action=step.action.ACTION,
                service=step.action.SERVICE,
                kind=kind.value,
                compensation=step.compensation.ACTION if step.compensation else None,
                after_pivot=past_pivot,
                x=left + i * (NODE_WIDTH + GAP),
                y=y,
            )
            placed.append(node)
        if any(s.resolved_kind is StepKind.PIVOT for s in steps):
            past_pivot = True
        if group is not None:
            pad = GAP / 2
            groups.append(
                Group(
                    group.name,
                    group.grouping,
                    left - pad,
                    y - pad - 12,
                    span + 2 * pad,
                    NODE_HEIGHT + 2 * pad + 12,
                )
            )
        for a in previous:
            for b in placed:
                edges.append(
                    Edge(a.x + NODE_WIDTH / 2, a.y + NODE_HEIGHT, b.x + NODE_WIDTH / 2, b.y - 14)
                )
        nodes.extend(placed)
        previous = placed
    height = 2 * MARGIN + GAP + len(stages) * STAGE_HEIGHT
    return Graph(width, height, nodes, groups, edges)
