"""The operator CLI (`convection start|list|show|...`) end to end, against a running API.

The coordinator and its API run in this process on the real PostgreSQL and RabbitMQ. Some
commands run as processes of the installed `convection` script (start, top in a terminal, exit
codes); importing `convection` and every service's commands costs seconds per process on a small
machine, so the rest run as one batch: a single child process builds the real `convection` app
once and invokes it per command line, with its own arguments, environment and stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from convection.client import Client
from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from sagas import osm_registry
from tests.integration.api_support import UndoFailing, steered_participant
from tests.integration.coord_support import eventually, migrate, settings
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

OPERATOR, READER = "cli-operator", "cli-reader"
CONVECTION = str(Path(sys.executable).parent / "convection")
JAEGER = "http://jaeger.example:16686"
STAMP = rb"in flight at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"
"""The title of top's frame: one timestamp format, RFC 3339 UTC."""


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Rig:
    url: str
    client: Client
    participant: UndoFailing
    hold: set[str]
    fail: set[str]

    def env(self, **changes: str) -> dict[str, str]:
        env = {
            **os.environ,
            "CONVECTION_API_URL": self.url,
            "CONVECTION_API_TOKEN": OPERATOR,
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        env.pop("CONVECTION_JAEGER_URL", None)
        env.update(changes)
        return env

    async def cli(self, *args: str, stdin: bytes | None = None, **env: str) -> Result:
        proc = await asyncio.create_subprocess_exec(
            CONVECTION,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(**env),
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout=60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def status(self, saga_id: str) -> str:
        return str((await self.client.show(saga_id))["status"])

    async def until(self, saga_id: str, status: str) -> None:
        async def reached() -> bool:
            return await self.status(saga_id) == status

        await eventually(reached, within=20)


@asynccontextmanager
async def open_rig(urls: tuple[str, str]) -> AsyncIterator[Rig]:
    """A coordinator with its API and the steered participant, on the module's servers."""
    amqp_url, pg_url = urls
    await migrate(pg_url)
    participant, hold, fail = await steered_participant(amqp_url)
    tokens: Any = {OPERATOR: {"role": "operator", "name": "bob"}, READER: "reader"}
    try:
        async with Coordinator(settings(amqp_url, pg_url), registry=osm_registry()) as coordinator:
            server = ApiServer(coordinator, ApiSettings(port=0, tokens=tokens))
            url = await server.start()
            try:
                yield Rig(url, Client(url, OPERATOR), participant, hold, fail)
            finally:
                await server.stop()
    finally:
        await participant.stop()
        await participant.transport.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(urls: tuple[str, str]) -> AsyncIterator[Rig]:
    async with open_rig(urls) as opened:
        yield opened


def ns_input(ns_id: str) -> dict[str, Any]:
    return example("ns.instantiate", ns_id=ns_id)


async def test_start_from_a_file_and_from_stdin(rig: Rig, tmp_path: Path) -> None:
    data = tmp_path / "ns.json"
    data.write_text(json.dumps(ns_input("ns-cli-file")))
    from_file, from_stdin, unreachable = await asyncio.gather(
        rig.cli(
            "start", "ns.instantiate", "--input", str(data), "--saga-id", "cli-file", "-o", "json"
        ),
        rig.cli(
            "start",
            "ns.instantiate",
            "--input",
            "-",
            "--saga-id",
            "cli-stdin",
            stdin=json.dumps(ns_input("ns-cli-stdin")).encode(),
        ),
        rig.cli("list", CONVECTION_API_URL="http://127.0.0.1:1"),
    )
    # An exit code of the real process, not only of the app (the batch checks the rest).
    assert unreachable.code == 5, unreachable.err
    assert from_file.code == 0, from_file.err
    assert json.loads(from_file.out)["saga_id"] == "cli-file"
    assert from_stdin.code == 0, from_stdin.err
    assert from_stdin.out.startswith("started cli-stdin (ns.instantiate)")
    await rig.until("cli-file", "completed")
    await rig.until("cli-stdin", "completed")


BATCH = """
import json, sys
from typer.testing import CliRunner
from convection.cli import build_app

app, runner, results = build_app(), CliRunner(), []
for call in json.load(sys.stdin):
    r = runner.invoke(app, call["args"], input=call.get("stdin"), env=call["env"])
    results.append({"code": r.exit_code, "out": r.stdout, "err": r.stderr})
json.dump(results, sys.stdout)
"""


async def batch(
    rig: Rig, calls: list[tuple[list[str], dict[str, str], str | None]]
) -> list[Result]:
    """Run many command lines of the real `convection` app in one child process."""
    plan = [
        {"args": args, "env": {**rig.env(), **env}, "stdin": stdin} for args, env, stdin in calls
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BATCH,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=rig.env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(plan).encode()), timeout=90)
    assert proc.returncode == 0, err.decode()
    return [Result(r["code"], r["out"], r["err"]) for r in json.loads(out)]


async def test_every_command_and_exit_code(rig: Rig) -> None:
    rig.hold.add("cli-held")
    rig.fail.update({"cli-failed", "cli-undo"})
    rig.participant.fail_undo.add("cli-undo")
    await rig.client.start("ns.instantiate", ns_input("ns-cli-held"), saga_id="cli-held")
    account = example("vim-account.create", vim_account_id="vim-cli")
    await rig.client.start("vim-account.create", account, saga_id="cli-failed")
    await rig.client.start("ns.instantiate", ns_input("ns-cli-undo"), saga_id="cli-undo")
    await rig.client.start("ns.instantiate", ns_input("ns-cli-done"), saga_id="cli-done")
    await rig.until("cli-held", "running")
    await rig.until("cli-failed", "failed")
    await rig.until("cli-undo", "compensation_failed")
    await rig.until("cli-done", "completed")
    rig.fail.discard("cli-failed")
    no: dict[str, str] = {}
    (
        listed_json,
        listed,
        shown,
        shown_json,
        stats,
        top,
        cancelled,
        retried,
        skipped,
        missing,
        conflict,
        wrong_token,
        reader,
        unreachable,
        refused,
        usage,
    ) = await batch(
        rig,
        [
            (["list", "--output", "json", "--status", "completed"], no, None),
            (["list", "--type", "ns.instantiate"], no, None),
            (["show", "cli-done"], {"CONVECTION_JAEGER_URL": JAEGER}, None),
            (["show", "cli-done", "-o", "json"], no, None),
            (["stats", "--window", "600"], no, None),
            (["top", "--once"], no, None),
            (["cancel", "cli-held", "--reason", "operator changed their mind"], no, None),
            (["retry", "cli-failed", "--reason", "credentials fixed"], no, None),
            (["skip", "cli-undo", "ns-record", "--reason", "record deleted by hand"], no, None),
            (["show", "no-such-saga"], no, None),
            (["cancel", "cli-done", "--reason", "too late"], no, None),
            (["list"], {"CONVECTION_API_TOKEN": "wrong"}, None),
            (["cancel", "cli-done", "--reason", "x"], {"CONVECTION_API_TOKEN": READER}, None),
            (["list"], {"CONVECTION_API_URL": "http://127.0.0.1:1"}, None),
            (["start", "no.such-saga", "--input", "-"], no, "{}"),
            (["start", "ns.instantiate", "--input", "-"], no, "{not json"),
        ],
    )
    for r in (listed_json, listed, shown, shown_json, stats, top, cancelled, retried, skipped):
        assert r.code == 0, r.err
    # list, show, stats, top
    items = json.loads(listed_json.out)["items"]
    assert "cli-done" in {i["saga_id"] for i in items}
    assert all(i["status"] == "completed" for i in items)
    assert "cli-done" in listed.out and "cli-held" in listed.out and "running" in listed.out
    detail = json.loads(shown_json.out)
    trace_id = detail["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert f"trace id: {trace_id}" in shown.out
    assert f"trace: {JAEGER}/trace/{trace_id}" in shown.out
    assert "steps" in shown.out and "history" in shown.out and "duration" in shown.out
    for step in detail["steps"]:
        assert step["name"] in shown.out
    assert "saga.created" in shown.out and "bob" in shown.out
    assert "ns.instantiate" in stats.out and "p95" in stats.out and "ns-record" in stats.out
    assert "in flight at" in top.out and "recent failures" in top.out
    assert "cli-held" in top.out and "cli-undo" in top.out
    # cancel, retry, skip: done, with the reason and who asked in the history
    assert cancelled.out.startswith("cancel: cli-held")
    await rig.until("cli-failed", "completed")
    await rig.until("cli-undo", "compensated")
    held = await rig.client.show("cli-held")
    assert held["cancel_reason"] == "operator changed their mind"
    assert held["cancelled_by"] == "bob"
    for saga_id, cause in (("cli-failed", "retry_requested"), ("cli-undo", "skip_requested")):
        history = (await rig.client.show(saga_id))["history"]
        assert any(h["actor"] == "bob" for h in history if h["cause"] == cause)
    # the documented exit codes
    assert missing.code == 3, missing.err
    assert "no-such-saga" in missing.err
    assert conflict.code == 4, conflict.err
    assert "409" in conflict.err
    assert wrong_token.code == 6, wrong_token.err
    assert "CONVECTION_API_TOKEN" in wrong_token.err
    assert reader.code == 6, reader.err
    assert unreachable.code == 5, unreachable.err
    assert "CONVECTION_API_URL" in unreachable.err
    assert refused.code == 1, refused.err
    assert "unknown saga type" in refused.err
    assert usage.code == 2, usage.err


def _read_pty(fd: int, *, until: float, frames: int) -> bytes:
    """Read what the terminal shows until `frames` distinct frames appeared, or time is up."""
    out = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if len(set(re.findall(STAMP, out))) >= frames:
            break
    return out


async def test_top_refreshes_in_place_in_a_terminal(rig: Rig) -> None:
    primary, secondary = os.openpty()
    proc = await asyncio.create_subprocess_exec(
        CONVECTION,
        "top",
        "--interval",
        "0.5",
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=rig.env(TERM="xterm-256color", LINES="60"),
        start_new_session=True,
    )
    os.close(secondary)
    try:
        screen = await asyncio.to_thread(_read_pty, primary, until=time.monotonic() + 45, frames=3)
    finally:
        if proc.returncode is None:
            # `q`, as an operator quits; Ctrl-C can hang top's exit under load (an open bug,
            # see the stop's note), which this test is not about.
            os.write(primary, b"q")
        # Keep reading while it exits: its last frame must not block on a full terminal.
        drained = asyncio.create_task(
            asyncio.to_thread(_read_pty, primary, until=time.monotonic() + 60, frames=10**6)
        )
        code = await asyncio.wait_for(proc.wait(), timeout=60)
        await drained
        os.close(primary)
    stamps = set(re.findall(STAMP, screen))
    assert len(stamps) >= 3, screen[-2000:]
    assert b"recent failures" in screen
    # Redrawn in place: the cursor moves back up over the previous frame.
    assert re.search(rb"\x1b\[\d*A", screen)
    assert code == 0
