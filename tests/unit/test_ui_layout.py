"""The dashboard's pure layouts: a saga's timeline from its history, a definition's graph."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from convection.sealing import PREFIX
from coordinator.core import HistoryEntry, StepState
from coordinator.ui import graph, timeline
from coordinator.ui.present import REDACTED, SEALED, redact
from sagas import StepKind, osm_registry

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def log(seconds: float, kind: str, step: str, attempt: int = 1) -> HistoryEntry:
    return HistoryEntry(at=at(seconds), kind=kind, step=step, attempt=attempt, cause="test")


def step(name: str, stage: int, group: str | None = None) -> StepState:
    return StepState(
        name=name, stage=stage, group=group, service="s", action="a", kind=StepKind.COMPENSATABLE
    )


HISTORY = [
    HistoryEntry(at=T0, kind="saga.created", cause="test"),
    log(0, "step.started", "a"),
    log(1, "step.succeeded", "a"),
    log(1, "step.started", "b:1"),
    log(1, "step.started", "b:2"),
    log(2, "step.retry_scheduled", "b:2"),
    log(3, "step.started", "b:2", attempt=2),
    log(4, "step.failed", "b:2", attempt=2),
    log(4.5, "step.succeeded", "b:1"),
    log(5, "compensation.started", "b:1"),
    log(6, "compensation.succeeded", "b:1"),
    log(6, "compensation.started", "a"),
]


def test_each_attempt_is_a_bar_and_an_unfinished_one_is_running() -> None:
    bars = timeline.bars(HISTORY)
    b2 = [b for b in bars if b.step == "b:2"]
    assert [(b.attempt, b.outcome) for b in b2] == [(1, "retried"), (2, "failed")]
    undo = [b for b in bars if b.leg == "compensation"]
    assert [(b.step, b.outcome) for b in undo] == [("b:1", "succeeded"), ("a", "running")]
    assert undo[-1].end is None


def test_the_layout_puts_a_group_side_by_side_and_compensations_in_their_rows() -> None:
    steps = [step("a", 0), step("b:1", 1, "b"), step("b:2", 1, "b")]
    drawn = timeline.layout(steps, HISTORY, began=T0, now=at(8))
    assert [r.step for r in drawn.rows] == ["a", "b:1", "b:2"]
    assert drawn.span_seconds == 8
    first = {(b.bar.step, b.bar.attempt, b.bar.leg): b for b in drawn.bars}
    # Both steps of the group start at the same x: side by side, one row each.
    assert first[("b:1", 1, "forward")].x == first[("b:2", 1, "forward")].x
    comp = first[("a", 1, "compensation")]
    assert comp.offset_ms == 6000 and comp.y > drawn.rows[0].y
    assert (first[("b:1", 1, "compensation")].undo_order, comp.undo_order) == (1, 2)
    assert first[("a", 1, "forward")].undo_order == 0
    assert drawn.ticks[0].label == "+0.00s" and drawn.ticks[-1].label == "+8.00s"


def test_the_ns_instantiate_graph_has_its_for_each_groups_and_pivot() -> None:
    saga = osm_registry().latest("ns.instantiate")
    drawn = graph.layout(saga)
    assert {g.grouping for g in drawn.groups} == {"for_each"}
    [pivot] = [n for n in drawn.nodes if n.kind == "pivot"]
    assert pivot.name == "mark-ready" and not pivot.after_pivot
    assert all(n.compensation for n in drawn.nodes if n.kind == "compensatable")
    assert len(drawn.edges) == len(drawn.nodes) - 1, "one stage after another, one box each"


def test_redaction_hides_secret_names_and_sealed_values() -> None:
    shown = redact({"credentials": {"password": "pw", "user": "u"}, "x": [PREFIX + "abc"]})
    assert shown == {"credentials": {"password": REDACTED, "user": "u"}, "x": [SEALED]}
