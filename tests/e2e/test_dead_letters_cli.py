"""`convection dead-letters` against a running API: listings, details, replay, purge, exit codes.

The coordinator and its API run in this process on the real PostgreSQL and RabbitMQ; the
command lines run in one child process of the real `convection` app (see tests/e2e/test_cli.py
for why), and one in a terminal, to see the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from contracts import topology
from convection.transport import Transport
from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from sagas import osm_registry
from tests.e2e.test_cli import BATCH, CONVECTION, _read_pty
from tests.integration.coord_support import Db, eventually, migrate, open_client, settings

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

OPERATOR, READER = "dl-cli-operator", "dl-cli-reader"
SAGAS_Q, REPLIES_Q = topology.COORDINATOR_SAGAS_QUEUE, topology.COORDINATOR_REPLIES_QUEUE


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Rig:
    url: str
    client: Transport
    db: Db

    def env(self, **changes: str) -> dict[str, str]:
        env = {**os.environ, "CONVECTION_API_URL": self.url, "CONVECTION_API_TOKEN": OPERATOR}
        env |= {"COLUMNS": "200", "NO_COLOR": "1", **changes}
        return env

    async def batch(self, calls: list[tuple[list[str], dict[str, str]]]) -> list[Result]:
        plan = [{"args": args, "env": self.env(**env), "stdin": None} for args, env in calls]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            BATCH,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(),
        )
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(plan).encode()), 120)
        assert proc.returncode == 0, err.decode()
        return [Result(r["code"], r["out"], r["err"]) for r in json.loads(out)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(urls: tuple[str, str]) -> AsyncIterator[Rig]:
    amqp_url, pg_url = urls
    await migrate(pg_url)
    client = await open_client(amqp_url)
    db = Db(pg_url)
    tokens: Any = {OPERATOR: {"role": "operator", "name": "dave"}, READER: "reader"}
    try:
        async with Coordinator(settings(amqp_url, pg_url), registry=osm_registry()) as coordinator:
            server = ApiServer(coordinator, ApiSettings(port=0, tokens=tokens))
            url = await server.start()
            try:
                rig = Rig(url, client, db)
                await _three_dead_letters(rig)
                yield rig
            finally:
                await server.stop()
    finally:
        await client.close()
        await db.close()


async def _three_dead_letters(rig: Rig) -> None:
    sagas, replies = topology.SAGAS_EXCHANGE, topology.REPLIES_EXCHANGE
    start, reply = topology.START_ROUTING_KEY, topology.REPLY_ROUTING_KEY
    await rig.client.publish(sagas, start, b"{broken", message_id="cli-json")
    await rig.client.publish(sagas, start, b"[1]", message_id="cli-array")
    await rig.client.publish(replies, reply, b"\xff", message_id="cli-bytes")

    async def three() -> bool:
        return bool(await rig.db.scalar("SELECT count(*) FROM dead_letters") == 3)

    await eventually(three, within=20)


async def _ids(rig: Rig) -> dict[str, int]:
    async with rig.db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT message_id, id FROM dead_letters"))
        return {str(m): int(i) for m, i in rows}


async def test_every_dead_letter_command_and_exit_code(rig: Rig) -> None:
    ids = await _ids(rig)
    one, raw = str(ids["cli-json"]), str(ids["cli-bytes"])
    no: dict[str, str] = {}
    (
        listed_json,
        first_page,
        all_pages,
        lines,
        filtered,
        shown,
        shown_raw,
        shown_json,
        missing,
        replayed,
        again_refused,
        again,
        no_reason,
        reader,
        wrong_token,
        unreachable,
        purge_unconfirmed,
        purge_unselected,
        purged,
        not_a_number,
    ) = await rig.batch(
        [
            (["dead-letters", "list", "-o", "json"], no),
            (["dead-letters", "list", "--limit", "1", "-o", "json"], no),
            (["dead-letters", "list", "--limit", "1", "--all", "-o", "json"], no),
            (["dead-letters", "list"], no),
            (["dead-letters", "list", "--queue", SAGAS_Q, "--reason", "not_an_object"], no),
            (["dead-letters", "show", one], no),
            (["dead-letters", "show", raw], no),
            (["dead-letters", "show", one, "-o", "json"], no),
            (["dead-letters", "show", "99999"], no),
            (["dead-letters", "replay", one, "--reason", "try again", "--yes"], no),
            (["dead-letters", "replay", one, "--reason", "once more"], no),
            (["dead-letters", "replay", one, "--reason", "once more", "--again"], no),
            (["dead-letters", "replay", one], no),
            (["dead-letters", "replay", raw, "--reason", "x"], {"CONVECTION_API_TOKEN": READER}),
            (["dead-letters", "list"], {"CONVECTION_API_TOKEN": "wrong"}),
            (["dead-letters", "list"], {"CONVECTION_API_URL": "http://127.0.0.1:1"}),
            (["dead-letters", "purge", "--queue", REPLIES_Q], no),
            (["dead-letters", "purge", "--yes"], no),
            (["dead-letters", "purge", "--replayed", "--yes"], no),
            (["dead-letters", "show", "seven"], no),
        ]
    )
    for r in (listed_json, first_page, all_pages, lines, filtered, shown, shown_raw, shown_json):
        assert r.code == 0, r.err
    items = json.loads(listed_json.out)["items"]
    assert {i["message_id"] for i in items} == {"cli-json", "cli-array", "cli-bytes"}
    page = json.loads(first_page.out)
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert json.loads(all_pages.out) == {"items": items, "next_cursor": None}
    # Not a terminal: one tab-separated line per dead letter, full ids, RFC 3339 UTC times.
    rows = [line.split("\t") for line in lines.out.splitlines()]
    assert [int(r[0]) for r in rows] == [i["id"] for i in items]
    assert all(len(r) == 8 for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[1]) for r in rows)
    assert {r[6] for r in rows} == {"cli-json", "cli-array", "cli-bytes"}
    assert [r.split("\t")[6] for r in filtered.out.splitlines()] == ["cli-array"]
    assert "reason: invalid_json" in shown.out and f"queue: {SAGAS_Q}" in shown.out
    assert "headers:" in shown.out and "{broken" in shown.out
    assert "body (not UTF-8, base64):\n/w==" in shown_raw.out
    assert json.loads(shown_json.out)["body"] == "{broken"
    assert missing.code == 3 and "99999" in missing.err
    assert replayed.code == 0, replayed.err
    assert re.fullmatch(rf"replayed {one} as message [0-9a-f]{{32}}\n", replayed.out)
    assert again_refused.code == 4, again_refused.err  # not a terminal: no question asked
    assert again.code == 0, again.err
    assert no_reason.code == 2
    assert reader.code == 6 and "CONVECTION_API_TOKEN" in reader.err
    assert wrong_token.code == 6
    assert unreachable.code == 5 and "CONVECTION_API_URL" in unreachable.err
    assert purge_unconfirmed.code == 2 and "--yes" in purge_unconfirmed.err
    assert purge_unselected.code == 2
    assert (purged.code, purged.out) == (0, "purged 1 dead letter(s)\n")
    assert not_a_number.code == 2
    # The replays died again (still not JSON), each under its new message id: two new rows.
    assert await rig.db.scalar("SELECT count(*) FROM dead_letters") >= 2


async def _in_a_terminal(rig: Rig, columns: int) -> str:
    primary, secondary = os.openpty()
    proc = await asyncio.create_subprocess_exec(
        CONVECTION,
        "dead-letters",
        "list",
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=rig.env(TERM="xterm-256color", COLUMNS=str(columns)),
        start_new_session=True,
    )
    os.close(secondary)
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=60)
        screen = await asyncio.to_thread(_read_pty, primary, until=time.monotonic() + 2, frames=1)
    finally:
        os.close(primary)
    assert code == 0, screen
    return re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", screen).decode(errors="replace")


async def test_in_a_terminal_the_listing_is_a_table_with_full_ids(rig: Rig) -> None:
    wide, narrow = await asyncio.gather(_in_a_terminal(rig, 200), _in_a_terminal(rig, 60))
    assert "dead letters" in wide and "┃ reason" in wide
    # (the first test purged the one it replayed; its replays died again, under new ids)
    for message_id in ("cli-array", "cli-bytes"):
        assert f" {message_id} " in wide, wide
    assert re.search(r" [0-9a-f]{32} ", wide), wide
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", wide)
    # Folded over lines in a narrow terminal, never cut short with an ellipsis.
    assert "dead letters" in narrow and "…" not in narrow
