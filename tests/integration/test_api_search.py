"""The API's saga search, ids with `/`, hostile ids, one timestamp format, stats by outcome,
and abandon: against a real coordinator on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from convection.client import ApiError, Client
from tests.integration.api_support import (
    Api,
    _compensation_failed,
    serving_api,
)
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[Api]:
    async with serving_api(urls) as served:
        yield served


async def _ids(api: Api, **params: str) -> list[str]:
    status, _, body = await api.call("GET", "/sagas", params={"limit": "500", **params})
    assert status == 200, body
    return [s["saga_id"] for s in body["items"]]


async def _bad(api: Api, params: dict[str, str], parameter: str) -> str:
    status, headers, body = await api.call("GET", "/sagas", params=params)
    assert status == 400, (params, body)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["detail"].startswith(f"{parameter}: "), body
    assert body["errors"][0]["loc"] == ["query", parameter]
    return str(body["detail"])


async def test_search_by_every_filter(api: Api) -> None:
    api.fail.add("s-failed")
    await api.start("ns.instantiate", example("ns.instantiate", ns_id="ns-s1"), saga_id="s-ns1")
    for saga_id, account in (("s-vim1", "vim-s1"), ("s-vim2", "vim-s2"), ("s-failed", "vim-s3")):
        data = example("vim-account.create", vim_account_id=account)
        await api.start("vim-account.create", data, saga_id=saga_id)
    for saga_id, status in (
        ("s-ns1", "completed"),
        ("s-vim1", "completed"),
        ("s-failed", "failed"),
    ):
        await api.until(saga_id, status)
    await api.until("s-vim2", "completed")
    assert await _ids(api, resource="ns:ns-s1") == ["s-ns1"]
    assert await _ids(api, **{"input.vim_account_id": "vim-s1"}) == ["s-vim1"]
    assert await _ids(api, resource="vim:vim-s3") == ["s-failed"]
    nested = {"input.credentials.project": "osm", "saga_type": "vim-account.create"}
    assert {"s-vim1", "s-vim2", "s-failed"} <= set(await _ids(api, **nested))
    assert await _ids(api, **{"input.vnfs.0.member": "vnf-lb", "input.ns_id": "ns-s1"}) == ["s-ns1"]
    assert "s-failed" in await _ids(api, error_code="test")
    assert "s-vim1" not in await _ids(api, error_code="test")
    failed = await _ids(api, status="failed,compensated", **{"input.vim_account_id": "vim-s3"})
    assert failed == ["s-failed"]
    assert await _ids(api, status="completed", **{"input.vim_account_id": "vim-s3"}) == []
    assert "s-ns1" in await _ids(api, stuck="false")
    now = datetime.now(UTC)
    recent = await _ids(api, started_after=(now - timedelta(minutes=5)).isoformat())
    assert {"s-ns1", "s-vim1", "s-vim2", "s-failed"} <= set(recent)
    assert await _ids(api, started_before=(now - timedelta(days=1)).isoformat()) == []
    assert await _ids(api, until=(now - timedelta(days=1)).isoformat()) == []


async def test_keyset_pages_and_bad_parameters(api: Api) -> None:
    for i in range(5):
        data = example("vim-account.create", vim_account_id=f"vim-page-{i}")
        await api.start("vim-account.create", data, saga_id=f"page-{i}")
    wanted = {"input.credentials.username": "osm", "saga_type": "vim-account.create"}
    everything = await _ids(api, **wanted)
    seen: list[str] = []
    cursor = ""
    while True:
        status, _, page = await api.call(
            "GET", "/sagas", params={**wanted, "limit": "2", "cursor": cursor}
        )
        assert status == 200, page
        assert len(page["items"]) <= 2
        seen += [s["saga_id"] for s in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == everything and {f"page-{i}" for i in range(5)} <= set(seen)
    assert "cursor" in await _bad(api, {"cursor": "10^20"}, "cursor")
    assert "not a cursor from this API" in await _bad(api, {"cursor": "garbage"}, "cursor")
    assert "offset" in await _bad(api, {"offset": "10"}, "offset")
    await _bad(api, {"limit": "501"}, "limit")
    await _bad(api, {"limit": "0"}, "limit")
    await _bad(api, {"status": "sleeping"}, "status")
    await _bad(api, {"stuck": "perhaps"}, "stuck")
    await _bad(api, {"since": "2026-12-01T10:00:00"}, "since")
    await _bad(api, {"started_before": "tomorrow"}, "started_before")
    await _bad(api, {"input.a..b": "x"}, "input.a..b")


async def test_timestamps_are_rfc3339_utc_with_z(api: Api) -> None:
    saga_id = await api.start("vim-account.create", example("vim-account.create"))
    saga = await api.until(saga_id, "completed")
    assert STAMP.match(saga["created_at"]) and STAMP.match(saga["updated_at"])
    assert all(STAMP.match(h["at"]) for h in saga["history"])
    assert STAMP.match(saga["steps"][0]["started_at"])
    _, _, page = await api.call("GET", "/sagas", params={"limit": "1"})
    assert STAMP.match(page["items"][0]["created_at"])


async def test_ids_with_a_slash(api: Api) -> None:
    data = example("vim-account.create", vim_account_id="vim-slash")
    status, headers, body = await api.call(
        "POST",
        "/sagas",
        body={"saga_type": "vim-account.create", "input": data, "saga_id": "tenant-a/vim:1"},
    )
    assert status == 202, body
    assert headers["Location"] == "/sagas/tenant-a%2Fvim%3A1"
    client = Client(api.url, "op-secret")
    saga = await client.wait("tenant-a/vim:1", timeout=20)
    assert saga["saga_id"] == "tenant-a/vim:1" and saga["status"] == "completed"
    status, _, raw = await api.call("GET", "/sagas/tenant-a%2Fvim:1")
    assert status == 200 and raw["saga_id"] == "tenant-a/vim:1"
    # Every verb route is reached with such an id (409: the saga has ended).
    for verb in ("cancel", "retry"):
        with pytest.raises(ApiError) as refused:
            await client.verb("tenant-a/vim:1", verb, "x")
        assert refused.value.status == 409, verb
    with pytest.raises(ApiError) as refused:
        await client.verb("tenant-a/vim:1", "skip", "x", step="validate")
    assert refused.value.status == 409
    for path in ("", "/cancel", "/retry", "/steps/x%2Fy/skip"):
        method = "GET" if not path else "POST"
        status, _, body = await api.call(method, f"/sagas/no%2Fsuch{path}", body={"reason": "x"})
        assert status == 404, (path, body)
        assert "no/such" in body["detail"]


async def test_hostile_ids_are_problems_never_500(api: Api) -> None:
    cases = {
        "/sagas/a%00b": 400,
        "/sagas/%00": 400,
        "/sagas/a%00b/cancel": 400,
        "/sagas/" + "x" * 129: 404,
        "/sagas/" + "x" * 129 + "/retry": 404,
        "/sagas/-starts-with-a-dash": 404,
        "/sagas/%E2%98%83": 404,
    }
    for path, expected in cases.items():
        method = "POST" if path.endswith(("cancel", "retry")) else "GET"
        status, headers, body = await api.call(method, path, body={"reason": "x"})
        assert status == expected, (path, body)
        assert headers["Content-Type"].startswith("application/problem+json"), path
    # A raw NUL byte in the request line: refused by the HTTP parser itself.
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /sagas/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(100), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]


async def test_stats_steps_in_order_and_cancelled_apart(api: Api) -> None:
    # A saga waiting for the lock another holds is cancelled at once: nothing to undo.
    api.hold.add("st-holder")
    data = example("ns.instantiate", ns_id="ns-st")
    await api.start("ns.instantiate", data, saga_id="st-holder")
    await api.until("st-holder", "running")
    await api.start("ns.instantiate", data, saga_id="st-cancel")
    await api.until("st-cancel", "pending")
    status, _, _ = await api.call("POST", "/sagas/st-cancel/cancel", body={"reason": "stats"})
    assert status == 202
    await api.until("st-cancel", "cancelled")
    status, _, out = await api.call("GET", "/stats", params={"window": "600"})
    assert status == 200
    ns = next(t for t in out["saga_types"] if t["saga_type"] == "ns.instantiate")
    assert ns["outcomes"]["cancelled"] >= 1
    assert ns["cancelled_rate"] > 0
    total = ns["success_rate"] + ns["failure_rate"] + ns["cancelled_rate"]
    assert total == pytest.approx(1.0)
    assert sum(ns["outcomes"].values()) == ns["finished"]
    _, _, types = await api.call("GET", "/saga-types")
    steps = next(t for t in types["saga_types"] if t["saga_type"] == "ns.instantiate")
    order: list[str] = []
    for step in steps["versions"][0]["steps"]:
        name = step["group"] or step["name"]
        if name not in order:
            order.append(name)
    listed = [s["step"] for s in ns["steps"]]
    assert listed == [name for name in order if name in listed]
    assert listed[:2] == ["vim-account", "ns-record"]


async def test_abandon(api: Api) -> None:
    # Passes once the engine's abandon is merged (Operations.abandon).
    saga = await _compensation_failed(api, "ab-1", "ns-abandon")
    assert saga["status"] == "compensation_failed"
    status, _, body = await api.call(
        "POST", "/sagas/ab-1/abandon", token="read-secret", body={"reason": "x"}
    )
    assert status == 403, body
    status, _, body = await api.call("POST", "/sagas/ab-1/abandon", body={"reason": "gone"})
    assert status == 202, body
    done = await api.until("ab-1", "abandoned")
    assert any(h["actor"] == "alice" for h in done["history"])
    status, _, body = await api.call("POST", "/sagas/ab-1/abandon", body={"reason": "again"})
    assert status == 409, body
    status, _, _ = await api.call("POST", "/sagas/no-such-saga/abandon", body={"reason": "x"})
    assert status == 404
    status, _, body = await api.call("POST", "/sagas/ab-1/abandon", body={})
    assert status == 422, body
