"""A rolling upgrade of a saga package, on the real services, from a fresh virtual environment.

Coordinator A runs order.place v1 only. Orders in flight (their participants held back) go on
when B (v1 and v2) starts and A stops: they finish on v1, while a new order starts on v2.
Then B gives way to C (v2 only): the v1 instances it meets are parked, untouched and visibly
(`definition_missing: order.place@1`), until a coordinator with v1 is back and they finish.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from contracts import topology
from tests.e2e.stack import Stack, Venv
from tests.e2e.test_own_saga_package import order
from tests.faults.private import free_port
from tests.integration.coord_support import migrate

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
V1, BOTH, V2 = "order_saga.sagas:V1_ONLY", "order", "order_saga.sagas:V2_ONLY"


@pytest.mark.timeout(300)
async def test_v1_instances_finish_on_v1_and_wait_parked_without_a_v1_coordinator(
    venv: Venv,
    tmp_path: Path,
    fresh_amqp_url: str,
    fresh_pg_url: str,
) -> None:
    await migrate(fresh_pg_url)
    work = tmp_path / "cwd"
    work.mkdir()
    stack = Stack(fresh_amqp_url, fresh_pg_url, tmp_path / "logs", python=venv.python)

    def participant(name: str, service: str | None = None) -> None:
        ref = f"order_saga.participant:{service or name}"
        stack.spawn(name, venv.convection, "participant", ref, cwd=work)

    def coordinator(name: str, sagas: str, port: int = 0) -> None:
        stack.spawn(
            name, "coordinator", cwd=work, CONVECTION_SAGAS=sagas, CONVECTION_API_PORT=str(port)
        )

    def step_is(saga_id: str, step: str, status: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            rows = await stack.sql(
                "SELECT status FROM saga_steps WHERE saga_id = $1 AND name = $2", saga_id, step
            )
            return bool(rows) and rows[0]["status"] == status

        return check

    async with stack.running():
        coordinator("a", V1)
        await stack.consumers(topology.COORDINATOR_REPLIES_QUEUE)
        participant("stock")
        participant("shipping")
        await stack.consumers(topology.command_queue("stock"))
        # o1, o2: reserved, then held at `charge` (no billing participant yet).
        for o in ("o1", "o2"):
            await stack.start("order.place", o, order(o))
        for o in ("o1", "o2"):
            await stack.until(f"{o} charging", step_is(o, "charge", "running"))
        # o3, o4: held at `reserve` (the stock participant stops).
        stack.group.terminate("stock")
        for o in ("o3", "o4"):
            await stack.start("order.place", o, order(o, quantity=1))
        for o in ("o3", "o4"):
            await stack.until(f"{o} reserving", step_is(o, "reserve", "running"))

        # B (v1 and v2) joins; A stops. Side by side for a moment: nothing is lost.
        coordinator("b", BOTH)
        await stack.consumers(topology.COORDINATOR_REPLIES_QUEUE, at_least=2)
        stack.group.terminate("a")
        participant("billing")
        assert await stack.ended("o1") == "completed"
        assert await stack.ended("o2") == "completed"
        await stack.start("order.place", "o5", order("o5", quantity=2))
        await stack.until("o5 holding", step_is("o5", "charge", "succeeded"))

        # C (v2 only) replaces B. The stock participant comes back: o3/o4's replies reach C.
        api = free_port()
        stack.group.terminate("b")
        coordinator("c", V2, api)
        await stack.consumers(topology.COORDINATOR_REPLIES_QUEUE)
        participant("stock-again", "stock")
        assert await stack.ended("o5") == "completed", "a v2 instance runs on C"

        async def parked() -> bool:
            rows = await stack.sql("SELECT id FROM sagas WHERE parked IS NOT NULL ORDER BY id")
            return [r["id"] for r in rows] == ["o3", "o4"]

        await stack.until("o3 and o4 parked", parked)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{api}"
            async with http.get(f"{url}/sagas", params={"stuck": "true"}) as resp:
                stuck = await resp.json()
            async with http.get(f"{url}/sagas/o3") as resp:
                shown = await resp.json()
        assert {s["saga_id"]: s["parked"] for s in stuck["items"]} == {
            "o3": "definition_missing: order.place@1",
            "o4": "definition_missing: order.place@1",
        }
        assert shown["parked"] == "definition_missing: order.place@1"
        assert shown["version"] == 1
        assert shown["status"] == "running", "untouched: it waits, it does not fail"
        assert [s["status"] for s in shown["steps"]] == ["running", "pending", "pending"]

        # A coordinator with v1 is back: the kept replies are fed in order and they finish.
        coordinator("b-again", BOTH)
        assert await stack.ended("o3") == "completed"
        assert await stack.ended("o4") == "completed"

        versions = {
            r["id"]: (r["definition_version"], r["status"], r["parked"])
            for r in await stack.sql("SELECT id, definition_version, status, parked FROM sagas")
        }
        assert versions == {
            "o1": (1, "completed", None),
            "o2": (1, "completed", None),
            "o3": (1, "completed", None),
            "o4": (1, "completed", None),
            "o5": (2, "completed", None),
        }
        for saga_id, (version, _status, _parked) in versions.items():
            [created] = await stack.sql(
                "SELECT detail FROM saga_history WHERE saga_id = $1 AND kind = 'saga.created'",
                saga_id,
            )
            assert json.loads(created["detail"])["version"] == version
        kinds = [
            r["kind"]
            for r in await stack.sql(
                "SELECT kind FROM saga_history WHERE saga_id = 'o3' ORDER BY id"
            )
        ]
        assert kinds.index("saga.parked") < kinds.index("saga.unparked")
        [stock] = await stack.sql("SELECT available FROM order_stock")
        assert stock["available"] == 100 - (3 + 3 + 1 + 1 + 2)
