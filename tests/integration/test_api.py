"""The coordinator's HTTP API against a real coordinator on PostgreSQL and RabbitMQ: starting
sagas, authentication, saga types, probes, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from convection.db import make_engine
from convection.transport import Transport
from coordinator.api import ROUTES, ApiServer, ApiSettings
from coordinator.openapi import document
from coordinator.service import readiness
from sagas import osm_registry
from tests.integration.api_support import READER, Api, ns_input, serving_api
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[Api]:
    # Timers tick at start, then not for minutes: a step may stay past its deadline (stuck).
    async with serving_api(urls, timer_interval=300, max_body_bytes=4096) as served:
        yield served


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


# -- saga types, probes, metrics, the document ---------------------------------------------------


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
