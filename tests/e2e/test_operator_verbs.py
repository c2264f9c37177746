"""Operator verbs and resource policies on the real participants.

The coordinator, the three adapters and the VIM simulator run as separate processes on the
real RabbitMQ and PostgreSQL; outcomes are checked in the simulator's resources and ledger
and in the lcm-adapter's tables, not only in the coordinator's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contracts import topology
from tests.e2e.stack import Stack
from tests.faults.private import free_port
from tests.integration.coord_support import migrate
from tests.unit.world import example

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]


class Ops(Stack):
    """A stack with the OSM services and a client of the coordinator's API."""

    api = ""

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.api + path, json=body) as resp,
        ):
            return resp.status, await resp.json()

    async def verb(self, saga_id: str, verb: str) -> Any:
        status, body = await self.call("POST", f"/sagas/{saga_id}/{verb}", {"reason": "test"})
        assert status == 202, body
        return body

    def account(self, vim_account_id: str) -> dict[str, Any]:
        data = example("vim-account.create", vim_account_id=vim_account_id)
        data["credentials"]["auth_url"] = f"{self.sim}/identity/v3"
        return data

    async def servers(self, saga_id: str) -> list[dict[str, Any]]:
        return list((await self.sim_json(f"/admin/resources?saga_id={saga_id}"))["servers"])

    async def ledger(self, saga_id: str, operation: str) -> int:
        entries = await self.sim_json(f"/admin/ledger?saga_id={saga_id}")
        return sum(1 for e in entries if e["operation"] == operation)

    async def steps(self, saga_id: str) -> dict[str, Any]:
        rows = await self.sql(
            "SELECT name, status, started_at, finished_at FROM saga_steps WHERE saga_id = $1",
            saga_id,
        )
        return {r["name"]: r for r in rows}


@asynccontextmanager
async def ops(
    tmp_path: Path,
    amqp_url: str,
    pg_url: str,
    *,
    boot: float = 1.0,
    coordinator_env: dict[str, str] | None = None,
    **lcm_env: str,
) -> AsyncIterator[Ops]:
    await migrate(pg_url)
    stack = Ops(amqp_url, pg_url, tmp_path / "logs")
    port = free_port()
    stack.api = f"http://127.0.0.1:{port}"
    async with stack.running():
        # Servers take `boot` seconds to come up: long enough to act on a saga in flight.
        stack.spawn("vim_sim", "vim_sim", CONVECTION_VIM_SIM_BOOT_SECONDS=str(boot))
        stack.spawn(
            "coordinator", "coordinator", CONVECTION_API_PORT=str(port), **(coordinator_env or {})
        )
        stack.spawn("vim_adapter", "vim_adapter")
        stack.spawn("ro_adapter", "ro_adapter")
        stack.spawn("lcm_adapter", "lcm_adapter", **lcm_env)
        for service in ("vim", "ro", "lcm"):
            await stack.consumers(topology.command_queue(service))
        await stack.consumers(topology.COORDINATOR_SAGAS_QUEUE)
        yield stack


def ns(ns_id: str, account: str = "vim-osm-1", **changes: Any) -> dict[str, Any]:
    return example("ns.instantiate", ns_id=ns_id, vim_account_id=account, **changes)


@pytest.mark.timeout(240)
async def test_retry_of_an_ns_started_before_its_account_runs_it_again(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url) as s:
        await s.start("ns.instantiate", "early", ns("ns-early", "vim-late"))
        assert await s.ended("early") == "failed"
        _, shown = await s.call("GET", "/sagas/early")
        assert shown["error"]["code"] == "unknown_vim_account"
        await s.start("vim-account.create", "late", s.account("vim-late"))
        assert await s.ended("late") == "completed"
        await s.verb("early", "retry")
        assert await s.ended("early", within=120) == "completed"
        # Exactly one set of servers: the retry ran the steps that had not run, once.
        servers = await s.servers("early")
        assert len(servers) == 3, servers
        assert await s.ledger("early", "create_server") == 3
        _, shown = await s.call("GET", "/sagas/early")
        account_step = next(x for x in shown["steps"] if x["name"] == "vim-account")
        assert account_step["status"] == "succeeded"
        assert account_step["duration_seconds"] < 30, "the retried leg is timed from the retry"
        retries = [h for h in shown["history"] if h["kind"] == "operator.retry"]
        assert retries[0]["detail"]["steps"] == ["vim-account"]
        # Each end of the saga is counted once: it failed once, then completed once.
        ends = await _finished(s, "ns.instantiate")
        assert (ends.get("failed"), ends.get("completed")) == (1.0, 1.0)


@pytest.mark.timeout(240)
async def test_retry_of_a_failed_compensation_after_the_fault_is_removed(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    faults = json.dumps({"fail_actions": ["lcm.delete-ns-record"]})
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url, CONVECTION_LCM_FAULTS=faults) as s:
        await s.start("vim-account.create", "acct", s.account("vim-osm-1"))
        assert await s.ended("acct") == "completed"
        big = json.loads((ROOT / "sagas/examples/ns-instantiate-over-quota.json").read_text())
        await s.start("ns.instantiate", "big", big)
        assert await s.ended("big", within=120) == "compensation_failed"
        assert await s.sql("SELECT ns_id FROM lcm_ns_records WHERE ns_id = 'ns-big-1'")
        s.group.terminate("lcm_adapter")
        s.spawn("lcm_fixed", "lcm_adapter")
        await s.consumers(topology.command_queue("lcm"))
        await s.verb("big", "retry")
        assert await s.ended("big", within=120) == "compensated"
        assert await s.sql("SELECT ns_id FROM lcm_ns_records WHERE ns_id = 'ns-big-1'") == []
        assert await s.servers("big") == []
        undone = await s.sql(
            "SELECT detail FROM saga_history WHERE saga_id = 'big' AND step = 'ns-record'"
            " AND kind = 'compensation.started' ORDER BY id"
        )
        assert len(undone) == 2, "the failed compensation ran again after the retry"


@pytest.mark.timeout(240)
async def test_terminate_supersedes_instantiate_and_cancels_the_queued_scale_out(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url, boot=6.0) as s:
        await s.start("vim-account.create", "acct", s.account("vim-osm-1"))
        assert await s.ended("acct") == "completed"
        await s.start("ns.instantiate", "inst", ns("ns-web-1"))

        async def deploying() -> bool:
            steps = await s.steps("inst")
            return bool(steps) and steps["vdus:vnf-lb"]["status"] == "running"

        await s.until("inst deploying", deploying)
        await s.start("ns.scale-out", "scale", example("ns.scale-out"))
        await s.until("scale queued", lambda: _status_is(s, "scale", "pending"))
        await s.start("ns.terminate", "term", example("ns.terminate"))
        assert await s.ended("term", within=120) == "completed"
        assert await s.ended("inst") == "cancelled"
        assert await s.ended("scale") == "cancelled"
        [scale] = await s.sql("SELECT cancel_reason FROM sagas WHERE id = 'scale'")
        assert scale["cancel_reason"] == "superseded by term"
        assert await s.servers("inst") == []
        assert await s.sql("SELECT ns_id FROM lcm_ns_records WHERE ns_id = 'ns-web-1'") == []
        _, term = await s.call("GET", "/sagas/term")
        marked = next(x for x in term["steps"] if x["name"] == "mark-terminating")
        assert marked["result"]["existed"] is False, "it says the NS was already gone"


@pytest.mark.timeout(240)
async def test_scale_outs_of_two_vnfs_share_the_ns_and_a_vim_delete_waits(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url, boot=3.0) as s:
        await s.start("vim-account.create", "acct", s.account("vim-osm-1"))
        assert await s.ended("acct") == "completed"
        await s.start("ns.instantiate", "inst", ns("ns-web-1"))
        assert await s.ended("inst", within=120) == "completed"
        scale = example("ns.scale-out")
        await s.start("ns.scale-out", "lb", {**scale, "vnf": "vnf-lb"})
        await s.start("ns.scale-out", "app", {**scale, "vnf": "vnf-app"})
        assert await s.ended("lb", within=120) == "completed"
        assert await s.ended("app", within=120) == "completed"
        lb, app = (await s.steps("lb"))["vdus"], (await s.steps("app"))["vdus"]
        assert max(lb["started_at"], app["started_at"]) < min(
            lb["finished_at"], app["finished_at"]
        ), "both VNFs' VDUs were deploying at the same time"

        # A delete of the account waits for a running instantiate that shares it.
        await s.start("ns.instantiate", "inst-2", ns("ns-web-2"))
        await s.until("inst-2 running", lambda: _status_is(s, "inst-2", "running"))
        await s.start("vim-account.delete", "del", example("vim-account.delete"))
        await s.until("del waiting", lambda: _status_is(s, "del", "pending"))
        _, waiting = await s.call("GET", "/sagas/del")
        assert waiting["waiting"]["resources"] == ["vim:vim-osm-1"]
        queue = waiting["locks"]["vim:vim-osm-1"]
        assert {h["saga_id"]: h["mode"] for h in queue["holders"]} == {"inst-2": "shared"}
        assert queue["waiters"][0] == {
            "saga_id": "del",
            "saga_type": "vim-account.delete",
            "mode": "exclusive",
        }
        assert await s.ended("inst-2", within=120) == "completed"
        assert await s.ended("del") == "completed"
        inst_done = await s.sql("SELECT updated_at FROM sagas WHERE id = 'inst-2'")
        del_start = await s.sql("SELECT min(started_at) AS t FROM saga_steps WHERE saga_id = 'del'")
        assert del_start[0]["t"] >= inst_done[0]["updated_at"]


async def _status_is(s: Stack, saga_id: str, status: str) -> bool:
    return await s.status(saga_id) == status


async def _finished(s: Ops, saga_type: str) -> dict[str, float]:
    """outcome -> convection_sagas_finished_total of one saga type."""
    async with aiohttp.ClientSession() as http, http.get(s.api + "/metrics") as resp:
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        if line.startswith("convection_sagas_finished_total{") and f'"{saga_type}"' in line:
            labels, _, value = line.rpartition(" ")
            outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(value)
    return out


async def _project(s: Ops, name: str) -> dict[str, Any]:
    """A VIM project of its own, roomy enough for several NSs at once; its account input."""
    quota = {"cores": 200, "instances": 200}
    project = {"name": name, "user": name, "password": f"{name}-pw", "quota": quota}
    async with (
        aiohttp.ClientSession() as http,
        http.post(s.sim + "/admin/projects", json=project) as resp,
    ):
        assert resp.status in (200, 201), await resp.text()
    account = s.account(f"vim-{name}")
    account["credentials"].update(username=name, password=f"{name}-pw", project=name)
    return account


@pytest.mark.timeout(300)
async def test_a_batch_cancel_by_query_compensates_every_match_and_no_other(
    tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    async with ops(tmp_path, fresh_amqp_url, fresh_pg_url, boot=8.0) as s:
        for name in ("retired", "kept"):
            await s.start("vim-account.create", f"acct-{name}", await _project(s, name))
            assert await s.ended(f"acct-{name}") == "completed"
        doomed = ["on-retired-1", "on-retired-2"]
        for saga_id in doomed:
            await s.start("ns.instantiate", saga_id, ns(f"ns-{saga_id}", "vim-retired"))
        await s.start("ns.instantiate", "on-kept", ns("ns-on-kept", "vim-kept"))

        async def all_deploying() -> bool:
            rows = await s.sql(
                "SELECT DISTINCT saga_id FROM saga_steps WHERE action = 'ro.deploy-vdus' "
                "AND status = 'running'"
            )
            return {r["saga_id"] for r in rows} >= {*doomed, "on-kept"}

        await s.until("every NS deploying", all_deploying, within=90)
        query = "type=ns.instantiate,status=running,input.vim_account_id=vim-retired"
        env = {**s.env, "CONVECTION_API_URL": s.api}
        proc = await asyncio.create_subprocess_exec(
            s.python, "-m", "convection", "cancel", "--query", query,
            "--reason", "VIM retired", "--yes", "-o", "json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out)
        assert sorted(summary["done"]) == doomed, summary
        for saga_id in doomed:
            assert await s.ended(saga_id, within=120) == "cancelled"
            assert await s.servers(saga_id) == [], "every server of a cancelled NS is gone"
            _, shown = await s.call("GET", f"/sagas/{saga_id}")
            undone = [x["name"] for x in shown["steps"] if x["compensation"]["status"] == "done"]
            assert "ns-record" in undone and "networks" in undone, shown["steps"]
        assert await s.ended("on-kept", within=120) == "completed"
        assert len(await s.servers("on-kept")) > 0, "the other VIM's NS kept its servers"
