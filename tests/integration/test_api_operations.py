"""The HTTP API's reads and operator verbs against a real coordinator on PostgreSQL and
RabbitMQ: the saga list, stuck and waiting sagas, cancel, skip, retry and stats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import update

from coordinator.store import tables
from tests.integration.api_support import READER, Api, _compensation_failed, ns_input, serving_api
from tests.integration.coord_support import eventually
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[Api]:
    # Timers tick at start, then not for minutes: a step may stay past its deadline (stuck).
    async with serving_api(urls, timer_interval=300, max_body_bytes=4096) as served:
        yield served


# -- reading -------------------------------------------------------------------------------------


async def test_unknown_saga_is_404(api: Api) -> None:
    status, headers, body = await api.call("GET", "/sagas/no-such-saga")
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "no-such-saga" in body["detail"]
    for verb in ("cancel", "retry", "steps/ns-record/skip"):
        status, _, _ = await api.call("POST", f"/sagas/no-such-saga/{verb}", body={"reason": "x"})
        assert status == 404, verb


async def test_list_filters_and_pagination(api: Api) -> None:
    ids = [
        await api.start("vim-account.create", example("vim-account.create", vim_account_id=f"v{i}"))
        for i in range(3)
    ]
    for saga_id in ids:
        await api.until(saga_id, "completed")
    status, _, page = await api.call(
        "GET", "/sagas", params={"saga_type": "vim-account.create", "status": "completed"}
    )
    assert status == 200
    assert {s["saga_id"] for s in page["items"]} >= set(ids)
    assert all(s["saga_type"] == "vim-account.create" for s in page["items"])
    _, _, none = await api.call("GET", "/sagas", params={"status": "cancelled,failed"})
    assert not set(ids) & {s["saga_id"] for s in none["items"]}
    # Pagination: one at a time, newest first, a cursor until the end.
    seen: list[str] = []
    cursor: str | None = ""
    while cursor is not None:
        _, _, p = await api.call(
            "GET",
            "/sagas",
            params={"saga_type": "vim-account.create", "limit": "1", "cursor": cursor},
        )
        seen += [s["saga_id"] for s in p["items"]]
        cursor = p["next_cursor"]
    assert set(seen) >= set(ids) and len(seen) == len(set(seen))
    # Created since/until.
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}
    _, _, inside = await api.call("GET", "/sagas", params={**window, "limit": "500"})
    assert set(ids) <= {s["saga_id"] for s in inside["items"]}
    later = {"since": (now + timedelta(hours=1)).isoformat()}
    _, _, after = await api.call("GET", "/sagas", params=later)
    assert after["items"] == [] and after["next_cursor"] is None
    status, _, body = await api.call("GET", "/sagas", params={"since": "2026-01-01T00:00:00"})
    assert status == 400 and "timezone" in body["detail"]
    for bad in ({"limit": "many"}, {"limit": "0"}, {"cursor": "-5"}):
        status, _, _ = await api.call("GET", "/sagas", params=bad)
        assert status == 400, bad


async def test_a_held_saga_is_stuck_blocks_another_and_can_be_cancelled(api: Api) -> None:
    api.hold.add("held-1")
    await api.start("ns.instantiate", ns_input("ns-lock"), saga_id="held-1")

    async def ns_record_running() -> bool:
        steps = {s["name"]: s for s in (await api.saga("held-1"))["steps"]}
        return bool(steps["ns-record"]["status"] == "running")

    await eventually(ns_record_running)
    # A second saga on the same NS waits for the lock: what for, and where in line.
    await api.start("ns.instantiate", ns_input("ns-lock"), saga_id="waiter-1")
    waiter = await api.until("waiter-1", "pending")
    assert waiter["waiting"] == {
        "resources": ["ns:ns-lock"],
        "position": 1,
        "held_by": {"ns:ns-lock": "held-1"},
    }
    assert (await api.saga("held-1"))["waiting"] is None
    # Nothing is stuck until a running step is past its deadline (forced here: timers sleep).
    _, _, stuck = await api.call("GET", "/sagas", params={"stuck": "true"})
    assert stuck["items"] == []
    async with api.db.engine.begin() as conn:
        s = tables.saga_steps.c
        await conn.execute(
            update(tables.saga_steps)
            .where(s.saga_id == "held-1", s.name == "ns-record")
            .values(deadline=datetime.now(UTC) - timedelta(minutes=1))
        )
    _, _, stuck = await api.call("GET", "/sagas", params={"stuck": "true"})
    assert [s["saga_id"] for s in stuck["items"]] == ["held-1"]
    assert stuck["items"][0]["current_step"] == "ns-record"
    _, _, text = await api.call("GET", "/metrics")
    assert "convection_sagas_stuck 1.0" in text
    assert 'convection_sagas_in_flight{status="pending"} 1.0' in text
    # Cancel: the reason and who asked are in the history.
    status, _, body = await api.call(
        "POST", "/sagas/held-1/cancel", body={"reason": "customer withdrew"}
    )
    assert status == 202, body
    assert body["verdict"] == "applied"
    saga = await api.saga("held-1")
    assert saga["cancel_reason"] == "customer withdrew"
    assert saga["cancelled_by"] == "alice"
    asked = [h for h in saga["history"] if h["cause"] == "cancel_requested"]
    assert asked and all(h["actor"] == "alice" for h in asked)
    assert any("customer withdrew" in json.dumps(h) for h in asked)
    status, _, body = await api.call("POST", "/sagas/held-1/cancel", body={})
    assert status == 422 and body["errors"][0]["loc"] == ["reason"]


async def test_cancel_of_a_finished_saga_is_409(api: Api) -> None:
    saga_id = await api.start("ns.instantiate", ns_input("ns-done"))
    await api.until(saga_id, "completed")
    status, headers, _body = await api.call(
        "POST", f"/sagas/{saga_id}/cancel", body={"reason": "too late"}
    )
    assert status == 409
    assert headers["Content-Type"].startswith("application/problem+json")
    saga = await api.saga(saga_id)
    assert saga["status"] == "completed"
    assert any(h["actor"] == "alice" for h in saga["history"] if h["cause"] == "cancel_requested")


async def test_skip_a_failed_compensation(api: Api) -> None:
    await _compensation_failed(api, "skip-1", "ns-skip")
    status, _, body = await api.call(
        "POST", "/sagas/skip-1/steps/networks/skip", body={"reason": "nothing to undo"}
    )
    assert status == 409, body
    status, _, body = await api.call(
        "POST", "/sagas/skip-1/steps/ns-record/skip", body={"reason": "deleted by hand"}
    )
    assert status == 202, body
    saga = await api.until("skip-1", "compensated")
    steps = {s["name"]: s for s in saga["steps"]}
    assert steps["ns-record"]["status"] == "compensation_skipped"
    skipped = [h for h in saga["history"] if h["cause"] == "skip_requested"]
    assert skipped and all(h["actor"] == "alice" for h in skipped)
    status, _, _ = await api.call(
        "POST", "/sagas/skip-1/steps/ns-record/skip", body={"reason": "again"}
    )
    assert status == 409


async def test_retry_a_failed_saga(api: Api) -> None:
    api.fail.add("retry-1")
    account = example("vim-account.create", vim_account_id="vim-retry")
    await api.start("vim-account.create", account, saga_id="retry-1")
    saga = await api.until("retry-1", "failed")
    assert saga["steps"][0]["last_error"]["code"] == "test"
    api.fail.discard("retry-1")
    status, _, body = await api.call("POST", "/sagas/retry-1/retry", body={"reason": "fixed"})
    assert status == 202, body
    saga = await api.until("retry-1", "completed")
    # An operator retry gives a fresh budget of attempts; the history keeps every attempt.
    assert saga["steps"][0]["attempts"] == 1
    started = [
        h for h in saga["history"] if h["kind"] == "step.started" and h["step"] == "validate"
    ]
    assert len(started) == 2
    assert any(h["actor"] == "alice" for h in saga["history"] if h["cause"] == "retry_requested")
    status, _, _ = await api.call("POST", "/sagas/retry-1/retry", body={"reason": "again"})
    assert status == 409


async def test_retry_a_failed_compensation(api: Api) -> None:
    await _compensation_failed(api, "retry-2", "ns-retry")
    api.participant.fail_undo.discard("retry-2")
    status, _, body = await api.call("POST", "/sagas/retry-2/retry", body={"reason": "fixed"})
    assert status == 202, body
    await api.until("retry-2", "compensated", within=5)


# -- stats ---------------------------------------------------------------------------------------


async def test_stats(api: Api) -> None:
    ok = await api.start("ns.instantiate", ns_input("ns-stats"))
    api.fail.add("stats-bad")
    await api.start("ns.instantiate", ns_input("ns-stats-bad"), saga_id="stats-bad")
    await api.until(ok, "completed")
    await api.until("stats-bad", "compensated")
    status, _, out = await api.call("GET", "/stats", token=READER, params={"window": "600"})
    assert status == 200
    assert out["window_seconds"] == 600
    ns = next(t for t in out["saga_types"] if t["saga_type"] == "ns.instantiate")
    assert ns["count"] >= 2 and ns["finished"] >= 2
    assert 0 < ns["success_rate"] < 1
    # The held saga of an earlier test was cancelled: cancels are counted apart.
    rates = ns["success_rate"] + ns["failure_rate"] + ns["cancelled_rate"]
    assert rates == pytest.approx(1.0)
    assert 0 <= ns["mean_seconds"] <= ns["p95_seconds"] * 10
    assert ns["p95_seconds"] >= 0
    steps = {s["step"]: s for s in ns["steps"]}
    assert steps["networks"]["failure_rate"] > 0
    assert steps["ns-record"]["success_rate"] == 1.0
    assert steps["ns-record"]["mean_seconds"] is not None
    for bad in ("0", "soon"):
        status, _, _ = await api.call("GET", "/stats", params={"window": bad})
        assert status == 400
