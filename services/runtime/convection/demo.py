"""`convection demo`: the OSM story, end to end, with live progress and a summary.

Embedded (the default): the coordinator, the three adapters, the VIM simulator and an
in-process broker in this one process, on an SQLite file, nothing to install. With
`--amqp-url` and `--db-url`: the same story against real RabbitMQ and PostgreSQL, each
service in its own process. Either way the story is driven through the coordinator's HTTP
API, as an operator would, and the command exits 0 only if every saga ended as expected.

The runtime does not import the services: it finds them through entry points
(`convection.embedded` for the coordinator and the simulator, `convection.adapters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from convection.client import ApiError, Client

EMBEDDED_GROUP = "convection.embedded"
"""Entry points: name -> factory(env) returning an async context manager that yields a URL."""
ADAPTERS_GROUP = "convection.adapters"
"""Entry points: service -> `async run(*, transport, db_engine, stop)`."""
OSM_SERVICES = ("vim", "ro", "lcm")
"""The services of the OSM story the demo plays (its in-process broker declares their queues)."""


@dataclass
class EmbeddedEnv:
    """What an embedded component gets: a transport factory, the database, options."""

    open_transport: Callable[[], Any]
    """Returns a new, not yet connected Transport on the shared in-process broker."""
    db_url: str
    db_engine: Any
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Act:
    """One saga of the story and the status it must end in."""

    title: str
    saga_type: str
    input: dict[str, Any]
    expect: str
    cancel_when_running: str | None = None
    saga_id: str = ""
    status: str = "not started"
    started: float = 0.0
    ended: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def examples_dir() -> Path:
    """The example inputs, found through the sagas package's entry point."""
    found = [ep for ep in entry_points(group=EMBEDDED_GROUP) if ep.name == "examples"]
    if not found:
        raise RuntimeError("convection-sagas is not installed: its example inputs are missing")
    directory: Path = found[0].load()()
    return directory


def story(vim_url: str) -> list[Act]:
    """The OSM story, with the VIM simulator's address put in the VIM account."""
    folder = examples_dir()

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((folder / name).read_text())
        return data

    account = load("vim-account-create.json")
    account["credentials"]["auth_url"] = f"{vim_url}/identity/v3"
    first = load("ns-instantiate.json")
    third = {**first, "ns_id": "ns-web-2", "name": "web-frontend-2"}
    return [
        Act("create the VIM account", "vim-account.create", account, "completed"),
        Act("instantiate an NS of two VNFs", "ns.instantiate", first, "completed"),
        Act(
            "instantiate over the VIM quota",
            "ns.instantiate",
            load("ns-instantiate-over-quota.json"),
            "compensated",
        ),
        Act(
            "instantiate, cancel while VDUs deploy",
            "ns.instantiate",
            third,
            "cancelled",
            cancel_when_running="vdus:",
        ),
        Act("terminate the first NS", "ns.terminate", load("ns-terminate.json"), "completed"),
    ]


async def play(client: Client, acts: list[Act], console: Console, *, per_saga: float) -> bool:
    """Run the acts one after another with a live view; return whether all ended as expected."""
    with Live(_render(acts), console=console, refresh_per_second=8, transient=False) as live:
        for act in acts:
            act.started = time.monotonic()
            out = await client.start(act.saga_type, act.input)
            act.saga_id = out["saga_id"]
            cancelled = False
            deadline = time.monotonic() + per_saga
            while time.monotonic() < deadline:
                saga = await client.show(act.saga_id)
                act.status, act.steps = saga["status"], saga["steps"]
                act.error = str(saga.get("error") or "")
                live.update(_render(acts))
                if saga["status"] in (
                    "completed",
                    "compensated",
                    "failed",
                    "compensation_failed",
                    "cancelled",
                ):
                    break
                prefix = act.cancel_when_running
                if (
                    prefix
                    and not cancelled
                    and any(
                        s["name"].startswith(prefix) and s["status"] == "running"
                        for s in saga["steps"]
                    )
                ):
                    await client.verb(act.saga_id, "cancel", "demo: the customer changed mind")
                    cancelled = True
                await asyncio.sleep(0.2)
            act.ended = time.monotonic()
            live.update(_render(acts))
    return all(a.status == a.expect for a in acts)


def _render(acts: list[Act]) -> Group:
    table = Table(title="Convection demo: the OSM story", expand=False)
    for col in ("act", "saga type", "status", "expected", "time"):
        table.add_column(col)
    current = None
    for act in acts:
        took = (act.ended or time.monotonic()) - act.started if act.started else 0.0
        mark = (
            "[green]✓[/]"
            if act.status == act.expect
            else ("[red]✗[/]" if act.ended else "…" if act.started else " ")
        )
        table.add_row(
            f"{mark} {act.title}",
            act.saga_type,
            act.status,
            act.expect,
            f"{took:.1f}s" if act.started else "",
        )
        if act.started:
            current = act
    parts: list[Any] = [table]
    if current is not None and current.steps:
        steps = Table(title=f"steps of {current.saga_id}")
        for col in ("step", "status", "attempts", "duration", "error"):
            steps.add_column(col)
        for s in current.steps:
            dur = s.get("duration_seconds")
            err = s.get("last_error") or {}
            steps.add_row(
                s["name"],
                s["status"],
                str(s.get("attempts", 0)),
                f"{dur:.2f}s" if dur is not None else "",
                (err.get("message") or "")[:70],
            )
        parts.append(steps)
    return Group(*parts)


def summary(acts: list[Act]) -> Table:
    """The final table: every saga, how it ended, whether that was the expected end."""
    table = Table(title="summary")
    for col in ("act", "saga id", "ended", "expected", "ok", "time"):
        table.add_column(col)
    for a in acts:
        ok = a.status == a.expect
        table.add_row(
            a.title,
            a.saga_id,
            a.status,
            a.expect,
            "[green]yes[/]" if ok else "[red]NO[/]",
            f"{a.ended - a.started:.1f}s",
        )
    return table


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded(workdir: Path, console: Console) -> AsyncIterator[tuple[str, str]]:
    """Run every service in this process; yield (API URL, VIM simulator URL)."""
    from contracts import topology
    from convection.db import make_engine
    from convection.sealing import generate_keypair
    from convection.transport import MemoryBroker, open_transport

    db_url = f"sqlite+aiosqlite:///{workdir / 'convection-demo.db'}"
    broker = MemoryBroker()
    private, public = generate_keypair()  # the demo's own vault, for the VIM passwords
    engine = make_engine(db_url)
    env = EmbeddedEnv(
        open_transport=lambda: open_transport(
            "memory://demo", topology.coordinator_topology(OSM_SERVICES), memory_broker=broker
        ),
        db_url=db_url,
        db_engine=engine,
        options={
            "vim_sim_port": _free_port(6080),
            "boot_seconds": 1.5,
            "vault_public_key": public,
        },
    )
    components = {
        ep.name: ep.load() for ep in entry_points(group=EMBEDDED_GROUP) if ep.name != "examples"
    }
    adapters = {ep.name: ep.load() for ep in entry_points(group=ADAPTERS_GROUP)}
    missing = {"coordinator", "vim_sim"} - set(components) | {"vim", "ro", "lcm"} - set(adapters)
    if missing:
        raise RuntimeError(
            f"not installed: {', '.join(sorted(missing))}; install the workspace "
            "(uv sync --all-packages) or the convection-* packages"
        )
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        sim_url = await stack.enter_async_context(_ctx(components["vim_sim"](env)))
        api_url = await stack.enter_async_context(_ctx(components["coordinator"](env)))
        tasks = []
        for name, run in adapters.items():
            transport = env.open_transport()
            await transport.connect()
            stack.push_async_callback(transport.close)
            tasks.append(
                asyncio.create_task(
                    run(transport=transport, db_engine=engine, stop=stop, vault=private),
                    name=f"adapter-{name}",
                )
            )
        console.print(
            f"[dim]embedded: coordinator API {api_url}, VIM simulator {sim_url}, "
            f"database {db_url}[/]"
        )
        try:
            yield api_url, sim_url
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=10)


def _ctx(cm: Any) -> AbstractAsyncContextManager[str]:
    return cm  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def processes(
    amqp_url: str, db_url: str, console: Console, workdir: Path
) -> AsyncIterator[tuple[str, str]]:
    """Run each service as its own process against real servers; yield (API URL, VIM URL)."""
    from convection.sealing import generate_keypair

    api_port, sim_port = _free_port(8080), _free_port(6080)
    private, public = generate_keypair()
    base = {
        **os.environ,
        "CONVECTION_AMQP_URL": amqp_url,
        "CONVECTION_DB_URL": db_url,
        "CONVECTION_API_PORT": str(api_port),
        "CONVECTION_VIM_SIM_PORT": str(sim_port),
        "CONVECTION_VIM_SIM_BOOT_SECONDS": "1.5",
        # The demo's own vault: the coordinator seals the VIM password, the adapters open it.
        "CONVECTION_VAULT_PUBLIC_KEY": public,
        "CONVECTION_VAULT_KEY": private,
    }
    console.print("[dim]migrating the database: convection db upgrade[/]")
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "convection", "db", "upgrade", env=base
    )
    if await asyncio.wait_for(migrate.wait(), 120) != 0:
        raise RuntimeError("`convection db upgrade` failed: is the database reachable?")
    procs: list[asyncio.subprocess.Process] = []
    logs: dict[int, Path] = {}
    try:
        for module in ("vim_sim", "coordinator", "vim_adapter", "ro_adapter", "lcm_adapter"):
            log = workdir / f"{module}.log"
            with log.open("wb") as out:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", module, env=base, stdout=out, stderr=out
                    )
                )
            logs[procs[-1].pid] = log
            console.print(f"[dim]started {module} (pid {procs[-1].pid})[/]")
        api_url = f"http://127.0.0.1:{api_port}"
        await _wait_ready(f"{api_url}/readyz", procs, logs, within=90)
        await _wait_ready(f"http://127.0.0.1:{sim_port}/healthz", procs, logs, within=30)
        yield api_url, f"http://127.0.0.1:{sim_port}"
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()


async def _wait_ready(
    url: str, procs: list[asyncio.subprocess.Process], logs: dict[int, Path], within: float
) -> None:
    import aiohttp

    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            dead = [p for p in procs if p.returncode is not None]
            if dead:
                raise RuntimeError(
                    f"pid {dead[0].pid} exited with {dead[0].returncode}; "
                    "see its log in the demo's output above"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} was not ready within {within:.0f}s")


async def run_demo(amqp_url: str | None, db_url: str | None, *, per_saga: float = 60.0) -> int:
    """Play the story; return the exit code (0 only if every saga ended as expected)."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="convection-demo-") as tmp:
        workdir = Path(tmp)
        if bool(amqp_url) != bool(db_url):
            console.print("[red]error:[/] give both --amqp-url and --db-url, or neither")
            return 2
        runner = (
            processes(amqp_url, db_url, console, workdir)
            if amqp_url and db_url
            else embedded(workdir, console)
        )
        try:
            async with runner as (api_url, sim_url):
                acts = story(sim_url)
                ok = await play(Client(api_url), acts, console, per_saga=per_saga)
        except (ApiError, RuntimeError, OSError, TimeoutError) as exc:
            console.print(f"[red]the demo could not run:[/] {exc}")
            return 1
        console.print(summary(acts))
        if ok:
            console.print("[green]every saga ended as the story expects[/]")
            return 0
        console.print(
            "[red]some sagas did not end as expected[/]: run `convection show ID` on "
            "them against the same database, or rerun with --amqp-url/--db-url"
        )
        return 1
