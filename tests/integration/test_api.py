"""The coordinator's HTTP API against a real coordinator on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import update

import contracts
from contracts import Command, ErrorInfo, decode, encode, topology
from convection.db import make_engine
from convection.transport import Delivery, Transport
from coordinator.api import ROUTES, ApiServer, ApiSettings
from coordinator.openapi import document
from coordinator.service import Coordinator, readiness
from coordinator.store import tables
from sagas import osm_registry
from tests.integration.coord_support import (
    Db,
    Participant,
    eventually,
    migrate,
    open_client,
    settings,
)
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

OPERATOR, READER = "op-secret", "read-secret"
TOKENS = {OPERATOR: {"role": "operator", "name": "alice"}, READER: "reader"}


@dataclass
class UndoFailing(Participant):
    """The test participant, but compensations of the sagas in `fail_undo` fail for good."""

    fail_undo: set[str] = field(default_factory=set)

    async def _handle(self, delivery: Delivery) -> None:
        cmd = decode(delivery.body)
        assert isinstance(cmd, Command)
        if cmd.compensation and cmd.saga_id in self.fail_undo:
            self.received.append(cmd)
            error = ErrorInfo(code="undo_broken", message="the compensation fails on purpose")
            reply = contracts.reply_to(cmd, "failed", error=error)
            await self.transport.publish(
                topology.REPLIES_EXCHANGE,
                topology.REPLY_ROUTING_KEY,
                encode(reply),
                message_id=reply.message_id,
            )
            await delivery.ack()
            return
        await super()._handle(delivery)


@dataclass
class Api:
    """The API under test, its coordinator, participant and database."""

    url: str
    coordinator: Coordinator
    participant: UndoFailing
    db: Db
    session: aiohttp.ClientSession
    hold: set[str] = field(default_factory=set)
    """Sagas whose ns-record command is never answered."""
    fail: set[str] = field(default_factory=set)
    """Sagas whose networks (or validate) step fails for good."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = OPERATOR,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.url + path, data=data, headers=h, params=params
        ) as resp:
            raw = await resp.read()
            try:
                decoded: Any = json.loads(raw)
            except ValueError:
                decoded = raw.decode()
            return resp.status, resp.headers, decoded

    async def start(self, saga_type: str, data: dict[str, Any], **extra: Any) -> str:
        status, headers, body = await self.call(
            "POST", "/sagas", body={"saga_type": saga_type, "input": data, **extra}
        )
        assert status == 202, body
        assert headers["Location"] == f"/sagas/{body['saga_id']}"
        return str(body["saga_id"])

    async def saga(self, saga_id: str) -> dict[str, Any]:
        status, _, body = await self.call("GET", f"/sagas/{saga_id}", token=READER)
        assert status == 200, body
        return dict(body)

    async def until(self, saga_id: str, status: str, within: float = 20.0) -> dict[str, Any]:
        async def reached() -> bool:
            return bool((await self.saga(saga_id))["status"] == status)

        await eventually(reached, within=within)
        return await self.saga(saga_id)


async def steered_participant(amqp_url: str) -> tuple[UndoFailing, set[str], set[str]]:
    """A started fake participant: sagas in `hold` wait at ns-record, those in `fail` fail."""
    participant = UndoFailing(await open_client(amqp_url))
    hold: set[str] = set()
    fail: set[str] = set()

    def choose(cmd: Command) -> str | None:
        if cmd.saga_id in hold and cmd.step == "ns-record":
            return "hold"
        if cmd.saga_id in fail and cmd.step in ("networks", "validate"):
            return "failed"
        return None

    participant.choose = choose
    await participant.start()
    return participant, hold, fail


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[Api]:
    amqp_url, pg_url = urls
    await migrate(pg_url)
    participant, hold, fail = await steered_participant(amqp_url)
    db = Db(pg_url)
    # Timers tick at start, then not for minutes: a step may stay past its deadline (stuck).
    coord_settings = settings(amqp_url, pg_url, timer_interval=300)
    api_settings = ApiSettings(port=0, tokens=TOKENS, max_body_bytes=4096)
    try:
        async with (
            Coordinator(coord_settings, registry=osm_registry()) as coordinator,
            aiohttp.ClientSession() as session,
        ):
            server = ApiServer(coordinator, api_settings)
            url = await server.start()
            try:
                yield Api(url, coordinator, participant, db, session, hold, fail)
            finally:
                await server.stop()
    finally:
        await participant.stop()
        await participant.transport.close()
        await db.close()


def ns_input(ns_id: str) -> dict[str, Any]:
    return example("ns.instantiate", ns_id=ns_id)


# -- starting -------------------------------------------------------------------------------------


async def test_start_returns_202_with_location_and_the_saga_completes(api: Api) -> None:
    status, headers, body = await api.call(
        "POST", "/sagas", body={"saga_type": "ns.instantiate", "input": ns_input("ns-start")}
    )
    assert status == 202
    assert headers["Location"] == f"/sagas/{body['saga_id']}"
    saga = await api.until(body["saga_id"], "completed")
    assert re.fullmatch(r"[0-9a-f]{32}", saga["trace_id"])
    assert saga["saga_type"] == "ns.instantiate"
    first = saga["steps"][0]
    assert first["status"] == "succeeded"
    assert first["attempts"] == 1
    assert first["started_at"] and first["finished_at"]
    assert first["duration_seconds"] >= 0
    assert first["last_error"] is None
    assert first["result"] is not None
    assert saga["history"][0]["kind"] == "saga.created"
    assert saga["history"][0]["actor"] == "alice"


async def test_a_callers_traceparent_becomes_the_sagas_trace(api: Api) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    account = example("vim-account.create", vim_account_id="vim-traced")
    status, _, body = await api.call(
        "POST",
        "/sagas",
        body={"saga_type": "vim-account.create", "input": account},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert status == 202, body
    _, _, saga = await api.call("GET", f"/sagas/{body['saga_id']}")
    assert saga["trace_id"] == trace_id


async def test_a_chosen_saga_id_is_kept(api: Api) -> None:
    saga_id = await api.start("ns.instantiate", ns_input("ns-chosen"), saga_id="chosen-1")
    assert saga_id == "chosen-1"
    await api.until(saga_id, "completed")


async def test_idempotency_key_same_body_same_saga_other_body_422(api: Api) -> None:
    body = {"saga_type": "ns.instantiate", "input": ns_input("ns-idem")}
    key = {"Idempotency-Key": "order-42"}
    s1, _, b1 = await api.call("POST", "/sagas", body=body, headers=key)
    s2, h2, b2 = await api.call("POST", "/sagas", body=body, headers=key)
    assert (s1, s2) == (202, 202)
    assert b1["saga_id"] == b2["saga_id"]
    assert h2["Location"] == f"/sagas/{b1['saga_id']}"
    other = {"saga_type": "ns.instantiate", "input": ns_input("ns-idem-other")}
    s3, h3, b3 = await api.call("POST", "/sagas", body=other, headers=key)
    assert s3 == 422
    assert h3["Content-Type"].startswith("application/problem+json")
    assert "Idempotency-Key" in b3["detail"]
    _status, _, page = await api.call("GET", "/sagas", params={"limit": "500"})
    assert sum(1 for s in page["items"] if s["saga_id"] == b1["saga_id"]) == 1


async def test_bad_json_is_400_problem(api: Api) -> None:
    status, headers, body = await api.call("POST", "/sagas", data=b"{not json")
    assert status == 400
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 400 and body["title"] == "Bad Request"


async def test_unknown_saga_type_is_422(api: Api) -> None:
    status, _, body = await api.call(
        "POST", "/sagas", body={"saga_type": "no.such-saga", "input": {}}
    )
    assert status == 422
    assert body["errors"][0]["loc"] == ["saga_type"]
    assert "ns.instantiate" in body["detail"]


async def test_schema_errors_are_422_with_field_errors(api: Api) -> None:
    bad_input = ns_input("ns-bad")
    del bad_input["vnfs"]
    status, headers, body = await api.call(
        "POST", "/sagas", body={"saga_type": "ns.instantiate", "input": bad_input}
    )
    assert status == 422
    assert headers["Content-Type"].startswith("application/problem+json")
    assert ["vnfs"] in [e["loc"] for e in body["errors"]]
    # The envelope itself: an unknown field and a missing saga_type.
    status, _, body = await api.call("POST", "/sagas", body={"input": {}, "colour": "red"})
    assert status == 422
    locs = [e["loc"] for e in body["errors"]]
    assert ["saga_type"] in locs and ["colour"] in locs


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    big = {"saga_type": "ns.instantiate", "input": {"pad": "x" * 10_000}}
    status, headers, body = await api.call("POST", "/sagas", body=big)
    assert status == 413
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "4096" in body["detail"]


# -- authentication ------------------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401_and_a_reader_may_not_post(api: Api) -> None:
    status, headers, body = await api.call("GET", "/sagas", token=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert body["title"] == "Unauthorized"
    status, _, _ = await api.call("GET", "/sagas", token="wrong")
    assert status == 401
    status, _, _ = await api.call(
        "GET", "/sagas", token=None, headers={"Authorization": "Basic abc"}
    )
    assert status == 401
    status, _, body = await api.call(
        "POST",
        "/sagas",
        token=READER,
        body={"saga_type": "ns.instantiate", "input": ns_input("ns-reader")},
    )
    assert status == 403
    assert "operator" in body["detail"]
    status, _, _ = await api.call("POST", "/sagas/x/cancel", token=READER, body={"reason": "r"})
    assert status == 403
    status, _, _ = await api.call("GET", "/sagas", token=READER)
    assert status == 200


async def test_probes_metrics_and_openapi_need_no_token(api: Api) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/openapi.json"):
        status, _, _ = await api.call("GET", path, token=None)
        assert status == 200, path


async def test_an_unauthenticated_api_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="not loopback"):
        ApiSettings(host="0.0.0.0").check()
    ApiSettings(host="::1").check()
    ApiSettings(host="localhost").check()
    ApiSettings(host="0.0.0.0", tokens={"t": "reader"}).check()


async def test_python_m_coordinator_exits_2_when_unauthenticated_on_any_address() -> None:
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "CONVECTION_DB_URL": "postgresql+asyncpg://u:p@127.0.0.1:1/db",
        "CONVECTION_API_HOST": "0.0.0.0",
    }
    env.pop("CONVECTION_API_TOKENS", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coordinator",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2
    assert b"CONVECTION_API_TOKENS" in err and b"not loopback" in err


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


async def _compensation_failed(api: Api, saga_id: str, ns_id: str) -> dict[str, Any]:
    api.fail.add(saga_id)
    api.participant.fail_undo.add(saga_id)
    await api.start("ns.instantiate", ns_input(ns_id), saga_id=saga_id)
    saga = await api.until(saga_id, "compensation_failed")
    steps = {s["name"]: s for s in saga["steps"]}
    assert steps["networks"]["status"] == "failed"
    assert steps["networks"]["last_error"]["code"] == "test"
    assert steps["ns-record"]["status"] == "compensation_failed"
    assert steps["ns-record"]["last_error"]["code"] == "undo_broken"
    return saga


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


# -- stats, probes, metrics, the document --------------------------------------------------------


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


async def test_saga_types_lists_versions_steps_locks_and_input_schemas(api: Api) -> None:
    status, _, body = await api.call("GET", "/saga-types", token=READER)
    assert status == 200
    types = {t["saga_type"]: t for t in body["saga_types"]}
    assert set(types) == set(osm_registry().names())
    terminate = types["ns.terminate"]["versions"][0]
    assert terminate["version"] == 1
    assert terminate["locks"]["policy"] == "supersede"
    assert terminate["locks"]["resources"][0] == {"resource": "ns:<ns_id>", "mode": "exclusive"}
    assert terminate["locks"]["supersede_queued"] == "cancel"
    assert terminate["steps"][0]["kind"] == "query"
    assert terminate["input_schema"]["required"] == ["ns_id", "vim_account_id"]


async def test_livez_and_readyz(api: Api) -> None:
    status, _, body = await api.call("GET", "/livez")
    assert (status, body) == (200, {"status": "ok"})
    status, _, body = await api.call("GET", "/readyz")
    assert status == 200
    assert body["checks"] == {"database": "ok", "broker": "ok", "schema": "ok"}


@dataclass
class _Unreachable:
    """A backend whose database is on a closed port (only what /readyz and /livez use)."""

    transport: Transport
    db_engine: Any
    registry: Any = None
    operations: Any = None

    async def readiness(self) -> dict[str, str]:
        return await readiness(self.db_engine, self.transport)

    async def metrics_text(self) -> bytes:
        return b""


async def test_readyz_is_503_when_the_database_is_unreachable(api: Api) -> None:
    engine = make_engine("postgresql+asyncpg://u:p@127.0.0.1:1/nowhere")
    backend = _Unreachable(api.coordinator.transport, engine)
    server = ApiServer(backend, ApiSettings(port=0))
    url = await server.start()
    try:
        async with api.session.get(url + "/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"].startswith("unreachable")
        assert body["checks"]["broker"] == "ok"
        async with api.session.get(url + "/livez") as resp:
            assert resp.status == 200
    finally:
        await server.stop()
        await engine.dispose()


async def test_metrics_has_every_metric(api: Api) -> None:
    account = example("vim-account.create", vim_account_id="vim-metrics")
    saga_id = await api.start("vim-account.create", account)
    await api.until(saga_id, "completed")
    status, headers, text = await api.call("GET", "/metrics", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    for name in (
        'convection_sagas_started_total{saga_type="vim-account.create"}',
        'convection_sagas_finished_total{outcome="completed",saga_type="vim-account.create"}',
        "convection_step_duration_seconds_bucket{",
        'convection_sagas_in_flight{status="running"}',
        "convection_sagas_stuck",
        "convection_outbox_backlog",
        "convection_outbox_oldest_pending_age_seconds",
        "convection_coordinator_dead_letters",
        "convection_coordinator_duplicates",
    ):
        assert name in text, name
    assert 'outcome="succeeded"' in text


async def test_the_openapi_document_matches_the_routes(api: Api) -> None:
    status, _, served = await api.call("GET", "/openapi.json", token=None)
    assert status == 200
    assert served == json.loads(json.dumps(document(), default=str))
    documented = {
        (method.upper(), path)
        for path, item in served["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == {(method, path) for method, path, _ in ROUTES}
    open_paths = {"/livez", "/readyz", "/metrics", "/openapi.json"}
    for path, item in served["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op["responses"], path
            declared = {
                p["name"]
                for p in [*item.get("parameters", []), *op.get("parameters", [])]
                if p["in"] == "path"
            }
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert (op.get("security") == []) == (path in open_paths), (method, path)


async def test_python_m_coordinator_serves_the_api(urls: tuple[str, str], api: Api) -> None:
    amqp_url, pg_url = urls
    env = {
        **os.environ,
        "CONVECTION_AMQP_URL": amqp_url,
        "CONVECTION_DB_URL": pg_url,
        "CONVECTION_API_PORT": "0",
        "CONVECTION_API_TOKENS": json.dumps({"svc": "reader"}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coordinator",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = b""
    try:
        while b"HTTP API on " not in log:
            line = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
            assert line, log.decode()
            log += line
        found = re.search(rb"HTTP API on (http://\S+)", log)
        assert found is not None
        url = found.group(1).decode()
        async with api.session.get(url + "/readyz") as resp:
            assert resp.status == 200, await resp.text()
        headers = {"Authorization": "Bearer svc"}
        async with api.session.get(url + "/sagas", headers=headers) as resp:
            assert resp.status == 200
        async with api.session.get(url + "/sagas") as resp:
            assert resp.status == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), timeout=30)
        code = await proc.wait()
    assert code == 0, (log + rest).decode()
