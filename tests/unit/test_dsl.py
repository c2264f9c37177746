"""Saga definitions are validated when built; a broken one names the saga, the step and the rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from contracts import lcm, ro
from sagas import (
    OSM_SAGAS,
    BuildContext,
    ForEach,
    LockPolicy,
    Parallel,
    Registry,
    RetryPolicy,
    Saga,
    SagaDefinitionError,
    Step,
    StepKind,
    UndeclaredResultError,
)

EARLIER = "a payload builder reads earlier steps only"


class In(BaseModel):
    ns_id: str = "ns-1"
    items: list[str] = ["a", "b"]


def _rec(ctx: BuildContext[In]) -> lcm.CreateNsRecord:
    return lcm.CreateNsRecord(ns_id=ctx.input.ns_id, name="n", nsd_id="d", vim_account_id="v")


def _del(ctx: BuildContext[In], _r: object) -> lcm.DeleteNsRecord:
    return lcm.DeleteNsRecord(ns_id=ctx.input.ns_id)


def _ready(ctx: BuildContext[In]) -> lcm.SetNsState:
    return lcm.SetNsState(ns_id=ctx.input.ns_id, state="ready")


def comp(name: str, **kw: Any) -> Step:
    return Step(name, lcm.CreateNsRecord, _rec, compensation=lcm.DeleteNsRecord, undo=_del, **kw)


def pivot(name: str = "ready") -> Step:
    return Step(name, lcm.SetNsState, _ready, kind=StepKind.PIVOT)


def retriable(name: str, **kw: Any) -> Step:
    return Step(name, lcm.SetNsState, _ready, kind=StepKind.RETRIABLE, **kw)


def build(*stages: Any, **kw: Any) -> Saga[In]:
    return Saga("test.saga", input=In, stages=stages, **kw)


@pytest.mark.parametrize(
    ("stages", "kw", "step", "rule"),
    [
        ((comp("a"), comp("a")), {}, "a", "unique step names"),
        ((comp("a"), Parallel("g", (comp("b"), comp("a")))), {}, "a", "unique step names"),
        ((Step("a", lcm.CreateNsRecord, _rec),), {}, None, None),  # defaults to retriable: ok
        (
            (Step("a", lcm.CreateNsRecord, _rec, kind=StepKind.COMPENSATABLE),),
            {},
            "a",
            "a compensatable step has a compensation",
        ),
        ((pivot(), comp("b")), {}, "b", "every step after the pivot is retriable"),
        (
            (pivot(), Step("q", lcm.SetNsState, _ready, kind=StepKind.QUERY)),
            {},
            "q",
            "every step after the pivot is retriable",
        ),
        ((retriable("r"), comp("b")), {}, "b", "every step after the pivot is retriable"),
        ((pivot("p1"), pivot("p2")), {}, "p2", "every step after the pivot is retriable"),
        ((comp("a", uses=("nope",)),), {}, "a", EARLIER),
        (
            (comp("a", uses=("b",)), comp("b")),
            {},
            "a",
            EARLIER,
        ),
        (
            (Parallel("g", (comp("a"), comp("b", uses=("a",)))),),
            {},
            "b",
            EARLIER,
        ),
        ((Parallel("g", (comp("a"), pivot())),), {}, "ready", "the pivot runs alone"),
        ((Parallel("g", (comp("a"),)),), {}, "g", "a parallel group has two steps or more"),
        (
            (
                Step(
                    "a",
                    lcm.SetNsState,
                    _ready,
                    kind=StepKind.PIVOT,
                    compensation=lcm.DeleteNsRecord,
                    undo=_del,
                ),
            ),
            {},
            "a",
            "a pivot step is never compensated",
        ),
        (
            (Step("a", lcm.CreateNsRecord, _rec, compensation=ro.DeleteVdus, undo=_del),),
            {},
            "a",
            "a compensation runs on the step's own service",
        ),
        ((comp("a", timeout=timedelta(0)),), {}, "a", "timeouts are positive"),
        ((comp("Bad Name"),), {}, "Bad Name", "step names are lower-case names"),
        ((), {}, None, "a saga has at least one step"),
        (
            (comp("a"),),
            {"lock_policy": LockPolicy.SUPERSEDE, "resources": lambda d: ["x"]},
            None,
            "supersede names what it supersedes",
        ),
        ((comp("a"),), {"lock_policy": LockPolicy.REJECT}, None, "a lock policy needs resources"),
    ],
)
def test_broken_definitions_name_saga_step_and_rule(
    stages: tuple[Any, ...], kw: dict[str, Any], step: str | None, rule: str | None
) -> None:
    if rule is None:
        build(*stages, **kw)
        return
    with pytest.raises(SagaDefinitionError) as err:
        build(*stages, **kw)
    assert err.value.saga == "test.saga"
    assert err.value.step == step
    assert err.value.rule == rule
    assert "saga 'test.saga'" in str(err.value)
    assert rule in str(err.value)
    if step:
        assert f"step {step!r}" in str(err.value)


def test_foreach_expands_against_the_input_and_later_steps_read_the_group() -> None:
    def _cfg(ctx: BuildContext[In]) -> lcm.ConfigureVnf:
        mine = ctx.results("per")[ctx.item]
        return lcm.ConfigureVnf(ns_id=mine.ns_id, vnf=ctx.item)

    saga = build(
        comp("rec"),
        ForEach("per", items=lambda d: d.items, key=lambda i: i, step=comp("x")),
        ForEach(
            "cfg",
            items=lambda d: d.items,
            key=lambda i: i,
            step=Step("c", lcm.ConfigureVnf, _cfg, kind=StepKind.RETRIABLE, uses=("per",)),
        ),
    )
    plan = saga.plan(In())
    assert [p.name for p in plan] == ["rec", "per:a", "per:b", "cfg:a", "cfg:b"]
    assert [p.stage for p in plan] == [0, 1, 1, 2, 2]
    assert saga.step_names() == ("rec", "per", "cfg")


def test_a_builder_reading_an_undeclared_result_fails_loudly() -> None:
    ctx: BuildContext[In] = BuildContext("s", In(), None, {}, {}, frozenset({"a"}))
    with pytest.raises(UndeclaredResultError, match="does not declare it in uses"):
        ctx.result("b")


def test_registry_rejects_duplicates_and_unknown_supersedes() -> None:
    one = build(comp("a"))
    with pytest.raises(SagaDefinitionError, match="defined twice"):
        Registry([one, one])
    sup = Saga(
        "other",
        input=In,
        stages=(comp("a"),),
        resources=lambda d: ["x"],
        lock_policy=LockPolicy.SUPERSEDE,
        supersedes=("nope",),
    )
    with pytest.raises(SagaDefinitionError, match="unknown saga type 'nope'"):
        Registry([sup])


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="maximum_attempts"):
        RetryPolicy(maximum_attempts=0)
    with pytest.raises(ValueError, match="initial_interval"):
        RetryPolicy(initial_interval=timedelta(seconds=10), maximum_interval=timedelta(seconds=1))


def test_the_osm_sagas_load() -> None:
    names = {s.name for s in OSM_SAGAS}
    assert names == {
        "vim-account.create",
        "vim-account.delete",
        "ns.instantiate",
        "ns.scale-out",
        "ns.terminate",
    }
