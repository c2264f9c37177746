"""The coordinator on the real RabbitMQ and PostgreSQL: sagas end to end, history, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from convection.db import make_engine
from coordinator.errors import SchemaBehind
from coordinator.service import Coordinator
from sagas import osm_registry
from tests.integration.coord_support import Rig, eventually, running_rig, settings, start_saga
from tests.services import postgres_database, rabbitmq_vhost
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    # One vhost and database for the module: every test uses sagas of its own.
    with rabbitmq_vhost() as amqp_url, postgres_database() as pg_url:
        yield amqp_url, pg_url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_rig(urls: tuple[str, str]) -> AsyncIterator[Rig]:
    async with running_rig(*urls) as rig:
        yield rig


@pytest.fixture
def rig(shared_rig: Rig) -> Rig:
    shared_rig.participant.outcomes.clear()
    return shared_rig


async def test_a_saga_started_over_the_broker_completes(rig: Rig) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await start_saga(
        rig.client,
        "ns.instantiate",
        "ok-1",
        example("ns.instantiate"),
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    await rig.until("ok-1", "completed")
    view = await rig.coordinator.get_saga("ok-1")
    assert view is not None
    assert view.state.trace_id == trace
    assert all(s.status == "succeeded" for s in view.state.steps)
    kinds = [r.entry.kind for r in view.history]
    assert kinds[0] == "saga.created"
    assert kinds.count("step.started") == len(view.state.steps)
    assert kinds.count("step.succeeded") == len(view.state.steps)
    statuses = [(r.entry.from_status, r.entry.to_status) for r in view.history]
    assert ("pending", "running") in statuses and ("running", "completed") in statuses
    # Every command carried the saga's trace; the lock was taken and given back.
    mine = [c for c in rig.participant.received if c.saga_id == "ok-1"]
    assert len(mine) == len(view.state.steps)
    held = "SELECT count(*) FROM resource_locks WHERE saga_id = 'ok-1'"
    assert await rig.db.scalar(held) == 0
    assert max(rig.participant.effects.values()) == 1


async def test_a_failing_vdu_deploy_compensates_in_reverse_order(rig: Rig) -> None:
    rig.participant.outcomes["vdus:vnf-app"] = "failed"
    await start_saga(rig.client, "ns.instantiate", "bad-1", example("ns.instantiate"))
    await rig.until("bad-1", "compensated")
    history = await rig.db.history("bad-1")
    undo = [r["step"] for r in history if r["kind"] == "compensation.started"]
    assert undo == ["vdus:vnf-lb", "networks", "ns-record"]
    done = [r["step"] for r in history if r["kind"] == "compensation.succeeded"]
    assert done == undo
    failed = [r for r in history if r["kind"] == "step.failed"]
    assert [r["step"] for r in failed] == ["vdus:vnf-app"]
    saga_moves = [(r["from_status"], r["to_status"]) for r in history if r["kind"] == "saga.status"]
    assert saga_moves == [
        ("pending", "running"),
        ("running", "compensating"),
        ("compensating", "compensated"),
    ]
    # The story is in order: the failure before the first undo, the last undo before the end.
    index = {id(r): i for i, r in enumerate(history)}
    first_undo = next(r for r in history if r["kind"] == "compensation.started")
    assert index[id(failed[0])] < index[id(first_undo)]
    for step in undo:
        assert rig.participant.undone[f"bad-1/{step}"] == 1


async def test_a_retryable_reply_is_retried_by_the_timers(rig: Rig) -> None:
    rig.participant.outcomes["networks"] = "retryable"
    await start_saga(rig.client, "ns.instantiate", "retry-1", example("ns.instantiate"))
    await rig.until("retry-1", "completed")
    history = await rig.db.history("retry-1")
    kinds = [(r["kind"], r["step"], r["attempt"]) for r in history]
    assert ("step.retry_scheduled", "networks", 1) in kinds
    assert ("step.started", "networks", 2) in kinds


async def test_cancel_withdraws_and_compensates(rig: Rig) -> None:
    rig.participant.outcomes["vdus:vnf-app"] = "hold"
    await start_saga(rig.client, "ns.instantiate", "cancel-1", example("ns.instantiate"))

    async def deploying() -> bool:
        return any(
            (c.saga_id, c.step) == ("cancel-1", "vdus:vnf-app") for c in rig.participant.received
        )

    await eventually(deploying)
    outcome = await rig.coordinator.cancel("cancel-1", "changed my mind", requested_by="tester")
    assert outcome.kind == "applied"
    # vnf-app never replies: its deadline is 10 minutes away, so the saga awaits it.
    view = await rig.coordinator.get_saga("cancel-1")
    assert view.state.status == "compensating"
    assert view.state.cancelled_by == "tester"
    refused = await rig.coordinator.cancel("cancel-1", "again")
    assert refused.kind == "refused"
    unknown = await rig.coordinator.cancel("nope", "x")
    assert (unknown.kind, unknown.reason) == ("rejected", "unknown_saga")
    listed = await rig.coordinator.list_sagas(status="compensating")
    assert [s["saga_id"] for s in listed] == ["cancel-1"]


async def test_the_coordinator_refuses_a_database_behind(fresh_pg_url: str) -> None:
    engine = make_engine(fresh_pg_url)
    try:
        with pytest.raises(SchemaBehind, match="convection db upgrade"):
            await Coordinator(
                settings("amqp://guest:guest@127.0.0.1:5672/none", fresh_pg_url),
                registry=osm_registry(),
                db_engine=engine,
            ).start()
    finally:
        await engine.dispose()


async def test_a_second_saga_on_the_same_ns_waits_its_turn_then_is_woken(rig: Rig) -> None:
    data = example("ns.instantiate", ns_id="ns-shared")
    await start_saga(rig.client, "ns.instantiate", "first-1", data)
    await start_saga(rig.client, "ns.instantiate", "second-1", data)
    await rig.until("first-1", "completed")
    await rig.until("second-1", "completed")
    second = [r["kind"] for r in await rig.db.history("second-1")]
    first = [r["kind"] for r in await rig.db.history("first-1")]
    # Whichever came first held the lock; the other waited, then a WakeSaga granted it.
    assert ("lock.waiting" in second) != ("lock.waiting" in first)
    waiter = second if "lock.waiting" in second else first
    assert waiter.index("lock.waiting") < waiter.index("lock.granted")
    held = "SELECT count(*) FROM resource_locks WHERE resource = 'ns:ns-shared'"
    assert await rig.db.scalar(held) == 0


async def test_an_operator_retry_resumes_a_failed_saga(rig: Rig) -> None:
    rig.participant.outcomes["register"] = "failed"
    data = example("vim-account.create", vim_account_id="acc-retry")
    await start_saga(rig.client, "vim-account.create", "retry-op", data)
    # The pivot failed: nothing after it is undone, the saga waits for an operator.
    await rig.until("retry-op", "failed")
    rig.participant.outcomes.clear()
    outcome = await rig.coordinator.retry("retry-op", "the VIM is fixed", requested_by="op")
    assert outcome.kind == "applied"
    await rig.until("retry-op", "completed")
    history = await rig.db.history("retry-op")
    # An operator retry gives a fresh budget of attempts; the history keeps every one of them.
    assert [r["attempt"] for r in history if r["kind"] == "step.started"] == [1, 1, 1]
    assert any(r["kind"] == "operator.retry" and r["actor"] == "op" for r in history)


async def test_terminate_supersedes_a_running_instantiate_through_the_outbox(rig: Rig) -> None:
    rig.participant.outcomes["networks"] = "slow"
    data = example("ns.instantiate", ns_id="ns-doomed")
    await start_saga(rig.client, "ns.instantiate", "inst-doomed", data)

    async def networking() -> bool:
        return any(
            (c.saga_id, c.step) == ("inst-doomed", "networks") for c in rig.participant.received
        )

    await eventually(networking)
    stop = {"ns_id": "ns-doomed", "vim_account_id": data["vim_account_id"]}
    await start_saga(rig.client, "ns.terminate", "term-doomed", stop)
    # A CancelSaga went from the coordinator to itself; the instantiate awaited its running
    # step, undid what it did, released the NS, and a WakeSaga let the terminate run.
    await rig.until("inst-doomed", "cancelled")
    await rig.until("term-doomed", "completed")
    view = await rig.coordinator.get_saga("inst-doomed")
    assert view.state.cancelled_by == "term-doomed"
    undo = [r.entry.step for r in view.history if r.entry.kind == "compensation.started"]
    assert undo == ["networks", "ns-record"]
    term = [r["kind"] for r in await rig.db.history("term-doomed")]
    assert term.index("lock.waiting") < term.index("lock.granted")
