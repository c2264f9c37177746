"""Another team's saga package, installed and run without patching Convection.

The workspace's distributions and `examples/order-saga` are built as wheels and installed
into a fresh virtual environment. From it, as separate processes on the real RabbitMQ and
PostgreSQL: `python -m coordinator` (which finds both the OSM and the order saga packages by
entry point), `convection participant` with the order package's participants, the
vim-adapter and the VIM simulator. An order completes; one with a declined card compensates
and gives its stock back; an OSM saga completes in the same coordinator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts import topology
from tests.e2e.stack import Stack, Venv
from tests.integration.coord_support import migrate
from tests.unit.world import example

pytestmark = [pytest.mark.slow, pytest.mark.amqp, pytest.mark.postgres]
DECLINED = "4000000000000002"
PARTICIPANTS = [f"order_saga.participant:{name}" for name in ("stock", "billing", "shipping")]


def order(order_id: str, *, card: str = "4242424242424242", quantity: int = 3) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "sku": "widget",
        "quantity": quantity,
        "card": card,
        "amount_cents": 1999,
        "address": "1 Main St, Springfield",
    }


@pytest.mark.timeout(300)
async def test_an_order_package_runs_beside_the_osm_sagas_from_a_fresh_venv(
    venv: Venv, tmp_path: Path, fresh_amqp_url: str, fresh_pg_url: str
) -> None:
    await migrate(fresh_pg_url)
    work = tmp_path / "cwd"  # not the project: nothing may import its sources
    work.mkdir()
    stack = Stack(fresh_amqp_url, fresh_pg_url, tmp_path / "logs", python=venv.python)
    async with stack.running():
        stack.spawn("vim_sim", "vim_sim", cwd=work)
        stack.spawn("coordinator", "coordinator", cwd=work)
        stack.spawn("vim_adapter", "vim_adapter", cwd=work)
        stack.spawn("orders", venv.convection, "participant", *PARTICIPANTS, cwd=work)
        for queue in ("stock", "billing", "shipping", "vim"):
            await stack.consumers(topology.command_queue(queue))
        await stack.consumers(topology.COORDINATOR_SAGAS_QUEUE)

        await stack.start("order.place", "order-ok", order("o-ok"))
        await stack.start("order.place", "order-declined", order("o-declined", card=DECLINED))
        account = example("vim-account.create", vim_account_id="vim-orders")
        account["credentials"]["auth_url"] = f"{stack.sim}/identity/v3"
        await stack.start("vim-account.create", "vim-orders", account)

        assert await stack.ended("order-ok") == "completed"
        assert await stack.ended("order-declined") == "compensated"
        assert await stack.ended("vim-orders") == "completed"

        # New instances run the newest version the package offers (2: a Parallel group).
        rows = await stack.sql(
            "SELECT id, definition_version FROM sagas WHERE type = 'order.place'"
        )
        assert {r["definition_version"] for r in rows} == {2}
        [stock] = await stack.sql("SELECT available FROM order_stock WHERE sku = 'widget'")
        assert stock["available"] == 100 - 3, "the declined order's stock is back"
        holds = {
            r["order_id"]: r["released"]
            for r in await stack.sql("SELECT order_id, released FROM order_holds")
        }
        assert holds == {"o-ok": False, "o-declined": True}
        charges = await stack.sql("SELECT order_id, refunded FROM order_charges")
        assert [(r["order_id"], r["refunded"]) for r in charges] == [("o-ok", False)]
        undone = await stack.sql(
            "SELECT step FROM saga_history WHERE saga_id = 'order-declined'"
            " AND kind = 'compensation.succeeded'"
        )
        assert [r["step"] for r in undone] == ["reserve"]
        for service in stack.group:
            assert service.running, f"{service.name} exited:\n{service.log_text()[-2000:]}"
