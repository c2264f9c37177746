"""One trace per saga, checked from the OTLP export of real processes alone.

The coordinator, the three adapters and the VIM simulator run as separate processes over
the real RabbitMQ and PostgreSQL and export OTLP/HTTP to a receiver the test starts. The
StartSaga carries the test's own traceparent (its span is the only one not exported).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from convection.tracing import new_traceparent, trace_id_of
from coordinator.store import tables
from tests.e2e.otlp_receiver import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_PRODUCER,
    KIND_SERVER,
    OtlpReceiver,
    ReceivedSpan,
    free_port,
)
from tests.environ import clean_environ
from tests.integration.coord_support import Db, eventually, migrate, open_client, start_saga

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "sagas" / "examples"
ADAPTERS = {"vim": "vim_adapter", "ro": "ro_adapter", "lcm": "lcm_adapter"}
WITHIN = 90.0


@dataclass
class Cluster:
    """The processes of one test, their logs and environment."""

    amqp_url: str
    pg_url: str
    receiver: OtlpReceiver
    logs: Path
    sim_port: int
    processes: dict[str, asyncio.subprocess.Process]

    def env(self, module: str, **extra: str) -> dict[str, str]:
        """Return the environment of `python -m module`."""
        env = clean_environ(("CONVECTION_", "OTEL_"))
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "CONVECTION_LOG_LEVEL": "INFO",
        }
        if module == "vim_sim":
            env |= {
                "CONVECTION_DB_URL": f"sqlite+aiosqlite:///{self.logs}/vim-sim.db",
                "CONVECTION_VIM_SIM_PORT": str(self.sim_port),
                "CONVECTION_VIM_SIM_BOOT_SECONDS": "0.2",
            }
        else:
            env |= {"CONVECTION_AMQP_URL": self.amqp_url, "CONVECTION_DB_URL": self.pg_url}
        if module == "coordinator":
            env |= {
                "CONVECTION_TIMER_INTERVAL": "0.5",
                "CONVECTION_API_ENABLED": "false",
            }
        return env | extra

    async def spawn(self, module: str, **extra: str) -> asyncio.subprocess.Process:
        """Start `python -m module` (replacing a stopped one of the same name)."""
        with (self.logs / f"{module}.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                env=self.env(module, **extra),
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        self.processes[module] = process
        return process

    async def stop_all(self) -> None:
        """SIGTERM every process and wait: each flushes its spans on the way out."""
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(f"{name} did not stop on SIGTERM") from None

    def log(self, module: str) -> str:
        """Return what `module` logged so far."""
        path = self.logs / f"{module}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@asynccontextmanager
async def cluster(
    amqp_url: str, pg_url: str, logs: Path, modules: list[str], **coordinator_env: str
) -> AsyncIterator[Cluster]:
    """Migrate, start the receiver and `modules` in parallel; stop them all at the end."""
    await migrate(pg_url)
    receiver = OtlpReceiver()
    await receiver.start()
    rig = Cluster(amqp_url, pg_url, receiver, logs, free_port(), {})
    try:
        for module in modules:
            await rig.spawn(module, **(coordinator_env if module == "coordinator" else {}))
        if "vim_sim" in modules:
            await _wait_http(f"http://127.0.0.1:{rig.sim_port}/identity/v3", rig)
        yield rig
    finally:
        for process in rig.processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        await receiver.stop()


async def _wait_http(url: str, rig: Cluster) -> None:
    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                return response.status < 500
        except aiohttp.ClientError:
            return False

    try:
        await eventually(up, within=WITHIN, every=0.2)
    except AssertionError:
        raise AssertionError(f"vim_sim never answered:\n{rig.log('vim_sim')[-3000:]}") from None


def _example(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data | changes


async def _run_saga(
    rig: Cluster, db: Db, saga_type: str, saga_id: str, data: dict[str, Any], status: str
) -> str:
    """Start a saga with the test's own traceparent, wait for `status`; return the trace id."""
    sender = new_traceparent()
    client = await open_client(rig.amqp_url)
    try:
        await start_saga(client, saga_type, saga_id, data, headers={"traceparent": sender})
    finally:
        await client.close()

    async def ended() -> bool:
        return (await db.statuses()).get(saga_id) in (status, "failed", "compensated")

    try:
        await eventually(ended, within=WITHIN, every=0.2)
    except AssertionError:
        logs = "\n".join(f"== {m}\n{rig.log(m)[-2500:]}" for m in rig.processes)
        raise AssertionError(f"saga {saga_id} did not end:\n{logs}") from None
    assert (await db.statuses())[saga_id] == status
    trace_id = trace_id_of(sender)
    assert trace_id is not None
    return trace_id


async def _steps(db: Db, saga_id: str) -> list[dict[str, Any]]:
    s = tables.saga_steps
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(s).where(s.c.saga_id == saga_id).order_by(s.c.ordinal))
        return [dict(r) for r in rows.mappings()]


def _check_trace(spans: list[ReceivedSpan], saga_id: str, trace_id: str, sender: str) -> None:
    """Every span of the saga is in its trace, and every parent is in the trace."""
    of_saga = [s for s in spans if s.attributes.get("saga.id") == saga_id]
    assert of_saga, f"no span of saga {saga_id}"
    assert {s.trace_id for s in of_saga} == {trace_id}
    trace = [s for s in spans if s.trace_id == trace_id]
    ids = {s.span_id for s in trace}
    orphans = [s for s in trace if s.parent and s.parent not in ids and s.parent != sender]
    assert not orphans, f"spans whose parent is missing: {orphans}"
    assert all(s.parent for s in trace), "the saga's trace has a root besides the sender's span"


def _check_steps(trace: list[ReceivedSpan], steps: list[dict[str, Any]]) -> None:
    """Each started step has a coordinator PRODUCER span with an adapter CONSUMER child."""
    for step in steps:
        if step["attempt"] < 1:
            continue
        producers = [
            s
            for s in trace
            if s.kind == KIND_PRODUCER
            and s.service == "coordinator"
            and s.attributes.get("saga.step") == step["name"]
            and s.attributes.get("saga.compensation") is False
        ]
        assert len(producers) >= step["attempt"], f"producer spans of {step['name']}"
        assert all(p.attributes["messaging.system"] == "rabbitmq" for p in producers)
        assert all(
            p.attributes["messaging.rabbitmq.destination.routing_key"] == step["service"]
            for p in producers
        )
        consumers = [
            s
            for s in trace
            if s.kind == KIND_CONSUMER and s.parent in {p.span_id for p in producers}
        ]
        assert consumers, f"no consumer span under the producer of {step['name']}"
        assert {c.service for c in consumers} == {f"{step['service']}-adapter"}


async def test_ns_instantiate_is_one_trace_with_compensations_linked(
    fresh_amqp_url: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    modules = ["vim_sim", "coordinator", *ADAPTERS.values()]
    async with cluster(fresh_amqp_url, fresh_pg_url, tmp_path, modules) as rig:
        db = Db(fresh_pg_url)
        try:
            account = _example(
                "vim-account-create",
                credentials={
                    "auth_url": f"http://127.0.0.1:{rig.sim_port}/identity/v3",
                    "username": "osm",
                    "password": "osm",
                    "project": "osm",
                },
            )
            runs: dict[str, tuple[str, str]] = {}
            for saga_type, saga_id, data, status in (
                ("vim-account.create", "trace-vim", account, "completed"),
                ("ns.instantiate", "trace-ns", _example("ns-instantiate"), "completed"),
                (
                    "ns.instantiate",
                    "trace-ns-big",
                    _example("ns-instantiate-over-quota"),
                    "compensated",
                ),
            ):
                trace_id = await _run_saga(rig, db, saga_type, saga_id, data, status)
                runs[saga_id] = (trace_id, status)
            steps = {saga_id: await _steps(db, saga_id) for saga_id in runs}
        finally:
            await db.close()
        await rig.stop_all()
        spans = rig.receiver.spans
    # Kept next to the logs, to read what was exported when a check fails.
    (tmp_path / "spans.json").write_text(json.dumps([vars(s) for s in spans], default=str))

    for saga_id, (trace_id, _status) in runs.items():
        trace = [s for s in spans if s.trace_id == trace_id]
        senders = {s.parent for s in trace} - {s.span_id for s in trace}
        assert len(senders) == 1, "the sender's span is the one parent outside the trace"
        _check_trace(spans, saga_id, trace_id, senders.pop())
        _check_steps(trace, steps[saga_id])

    ns_trace = rig.receiver.trace(runs["trace-ns"][0])
    services = {step["service"] for step in steps["trace-ns"]}
    assert {"lcm", "ro", "vim"} <= services
    assert {"coordinator", "lcm-adapter", "ro-adapter", "vim-adapter", "vim-sim"} <= {
        s.service for s in ns_trace
    }
    # The VIM's server spans sit under the adapters' HTTP client spans.
    by_id = {s.span_id: s for s in ns_trace}
    servers = [s for s in ns_trace if s.service == "vim-sim" and s.kind == KIND_SERVER]
    assert servers
    assert all(by_id[s.parent].kind == KIND_CLIENT for s in servers)
    assert any(s.attributes.get("db.collection.name") for s in ns_trace), "no database span"
    ends = [s for s in ns_trace if s.attributes.get("saga.outcome") == "completed"]
    assert len(ends) == 1

    big_trace = rig.receiver.trace(runs["trace-ns-big"][0])
    by_id = {s.span_id: s for s in big_trace}
    undone = [step for step in steps["trace-ns-big"] if step["comp_attempt"] > 0]
    assert undone, "the over-quota saga compensated nothing"
    for step in undone:
        comps = [
            s
            for s in big_trace
            if s.kind == KIND_PRODUCER
            and s.attributes.get("saga.step") == step["name"]
            and s.attributes.get("saga.compensation") is True
        ]
        assert comps, f"no compensation span of {step['name']}"
        for comp in comps:
            targets = [by_id.get(span_id) for _trace, span_id in comp.links]
            assert any(
                t is not None
                and t.kind == KIND_PRODUCER
                and t.attributes.get("saga.step") == step["name"]
                and t.attributes.get("saga.compensation") is False
                for t in targets
            ), f"the compensation of {step['name']} links to no span of its step"
    assert [s.attributes.get("saga.outcome") for s in big_trace].count("compensated") == 1


async def test_step_committed_before_a_crash_stays_in_the_saga_trace(
    fresh_amqp_url: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    modules = ["vim_sim", "coordinator", "vim_adapter"]
    async with cluster(
        fresh_amqp_url,
        fresh_pg_url,
        tmp_path,
        modules,
        CONVECTION_FAILPOINT="relay.before_publish",
    ) as rig:
        db = Db(fresh_pg_url)
        try:
            sender = new_traceparent()
            data = _example(
                "vim-account-create",
                credentials={
                    "auth_url": f"http://127.0.0.1:{rig.sim_port}/identity/v3",
                    "username": "osm",
                    "password": "osm",
                    "project": "osm",
                },
            )
            client = await open_client(rig.amqp_url)
            try:
                await start_saga(
                    client, "vim-account.create", "crash-1", data, headers={"traceparent": sender}
                )
            finally:
                await client.close()
            # The relay dies after the transaction that decided the step committed.
            code = await asyncio.wait_for(rig.processes["coordinator"].wait(), WITHIN)
            assert code == 137, rig.log("coordinator")[-3000:]
            unsent = await db.scalar(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL "
                "AND exchange = 'convection.commands'"
            )
            assert unsent == 1
            await rig.spawn("coordinator")

            async def done() -> bool:
                return (await db.statuses()).get("crash-1") == "completed"

            await eventually(done, within=WITHIN, every=0.2)
        finally:
            await db.close()
        await rig.stop_all()
        spans = rig.receiver.spans

    trace_id = trace_id_of(sender)
    assert trace_id is not None
    of_saga = [s for s in spans if s.attributes.get("saga.id") == "crash-1"]
    assert {s.trace_id for s in of_saga} == {trace_id}
    producers = [s for s in of_saga if s.kind == KIND_PRODUCER and s.attributes.get("saga.step")]
    assert producers, "the step published after the restart has no producer span"
    consumers = [s for s in of_saga if s.kind == KIND_CONSUMER and s.service == "vim-adapter"]
    assert consumers
    assert {c.parent for c in consumers} <= {p.span_id for p in producers}
