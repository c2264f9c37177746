"""The dead-letter rows on SQLite and PostgreSQL, and what a replay publishes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from contracts import StartSaga, encode, topology
from convection.db import make_engine
from convection.transport import MemoryBroker, open_transport
from coordinator.core import message_id
from coordinator.dead_letter_ops import decode_cursor, encode_cursor, replay_body, replay_headers
from coordinator.dead_letters import letter_of
from coordinator.store import DeadLetter, DeadLetterFilter, PurgeSelector, Store, upgrade_engine
from tests.unit.world import OSM_TOPOLOGY, T0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'dead.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = make_engine(db_url)
    await upgrade_engine(engine)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


def _letter(i: int, **changes: object) -> DeadLetter:
    values: dict[str, object] = {
        "queue": topology.COORDINATOR_REPLIES_QUEUE if i % 2 else topology.COORDINATOR_SAGAS_QUEUE,
        "reason": "invalid_json" if i % 3 else "unknown_saga",
        "body": f"body {i}".encode(),
        "message_id": f"m-{i}",
        "dead_at": T0 + timedelta(seconds=i // 2),  # pairs share a time: the id breaks ties
    }
    values.update(changes)
    return DeadLetter(**values)


async def test_one_row_per_dead_letter_pages_by_keyset_replays_and_purges(store: Store) -> None:
    async with store.transaction() as conn:
        for i in range(7):
            assert await store.add_dead_letter(conn, _letter(i), T0)
        # Collected again: the same queue, message id and reason is the same dead letter.
        assert not await store.add_dead_letter(conn, _letter(3, body=b"other copy"), T0)
        # A message without an id is told apart by its body.
        assert await store.add_dead_letter(conn, _letter(8, message_id=None), T0)
        assert not await store.add_dead_letter(conn, _letter(8, message_id=None), T0)
        assert await store.add_dead_letter(conn, _letter(8, message_id=None, body=b"b"), T0)
    async with store.reading() as conn:
        everything = await store.dead_letters(conn, DeadLetterFilter(limit=100))
        assert len(everything) == 9
        keys = [(r["dead_at"], r["id"]) for r in everything]
        assert keys == sorted(keys, reverse=True)
        paged, after = [], None
        while True:
            page = await store.dead_letters(conn, DeadLetterFilter(limit=2, after=after))
            paged += page
            if len(page) < 2:
                break
            after = decode_cursor(encode_cursor(page[-1]["dead_at"], page[-1]["id"]))
        assert paged == everything
        replies = await store.dead_letters(
            conn, DeadLetterFilter(queue=topology.COORDINATOR_REPLIES_QUEUE, reason="unknown_saga")
        )
        assert [r["message_id"] for r in replies] == ["m-3"]
        assert everything[-1]["size"] == len(b"body 0")
    first = everything[-1]["id"]
    async with store.transaction() as conn:
        row = await store.dead_letter(conn, first, lock=True)
        assert row is not None and row["body"] == b"body 0"
        await store.mark_replayed(conn, first, T0, replay_message_id="r-1", by="op", reason="x")
    async with store.reading() as conn:
        [replayed] = await store.dead_letters(conn, DeadLetterFilter(replayed=True))
        assert (replayed["id"], replayed["replay_message_id"]) == (first, "r-1")
        assert len(await store.dead_letters(conn, DeadLetterFilter(replayed=False))) == 8
        assert await store.dead_letter(conn, 10_000) is None
    async with store.transaction() as conn:
        with pytest.raises(ValueError, match="selector"):
            await store.purge_dead_letters(conn, PurgeSelector())
        assert await store.purge_dead_letters(conn, PurgeSelector(replayed=True)) == 1
        sagas = PurgeSelector(queue=topology.COORDINATOR_SAGAS_QUEUE, reason="invalid_json")
        assert await store.purge_dead_letters(conn, sagas) == 4  # m-2, m-4 and both id-less
        ids = tuple(r["id"] for r in everything if r["message_id"] in ("m-1", "m-3"))
        assert await store.purge_dead_letters(conn, PurgeSelector(ids=ids)) == 2
    async with store.reading() as conn:
        left = await store.dead_letters(conn, DeadLetterFilter())
        assert [r["message_id"] for r in left] == ["m-6", "m-5"]


async def test_hostile_dead_letters_are_stored(store: Store) -> None:
    broker = MemoryBroker()
    async with open_transport("memory://", OSM_TOPOLOGY, memory_broker=broker) as transport:
        headers = {
            topology.REASON_HEADER: "bad\x00reason" * 40,
            "x-nul\x00": "a\x00b",
            "lone": "\udcff",
            topology.DEAD_AT_HEADER: "not a time",
        }
        body = b'{"type": "saga.start", "saga_id": "' + b"x" * 200 + b'"}'
        await transport.publish(
            topology.DEAD_LETTER_EXCHANGE,
            topology.COORDINATOR_SAGAS_QUEUE,
            body,
            message_id="m\x00id",
            headers=headers,
        )
        dead = await transport.get(topology.dead_letter_queue(topology.COORDINATOR_SAGAS_QUEUE))
        assert dead is not None
        letter = letter_of(dead, topology.COORDINATOR_SAGAS_QUEUE)
        await dead.ack()
    assert letter.saga_id is None  # too long for a saga id: not one
    assert letter.message_type == "saga.start"
    assert letter.dead_at is None
    assert len(letter.reason) == 200 and "\x00" not in letter.reason
    async with store.transaction() as conn:
        assert await store.add_dead_letter(conn, letter, T0)
    async with store.reading() as conn:
        [row] = await store.dead_letters(conn, DeadLetterFilter())
        assert row["dead_at"] == T0  # no usable time of death: the time it was collected


def test_a_replay_gives_coordinator_messages_a_new_id_and_commands_their_own() -> None:
    start = StartSaga(saga_type="vim-account.create", input={})
    assert start.saga_id is None
    replayed = json.loads(replay_body(encode(start), "new-id"))
    # The same saga as the first delivery would have started, under a new message id.
    assert replayed["message_id"] == "new-id"
    assert replayed["saga_id"] == message_id("saga", start.message_id)
    bare = json.dumps({"type": "saga.cancel", "saga_id": "s", "reason": "r"}).encode()
    assert json.loads(replay_body(bare, "new-id"))["message_id"] == "new-id"
    command = json.dumps({"type": "step.command", "message_id": "c-1"}).encode()
    assert replay_body(command, "new-id") == command
    for unchanged in (b"{not json", b"[1]", b'{"type": "other"}', b"\xff"):
        assert replay_body(unchanged, "new-id") == unchanged
    headers = {
        "traceparent": "t",
        topology.REASON_HEADER: "r",
        topology.ERROR_HEADER: "E: x",
        "x-death": "gone",
        "x-first-death-queue": "q",
        "x-delivery-count": "3",
    }
    assert replay_headers(headers, "old") == {"traceparent": "t", topology.REPLAY_OF_HEADER: "old"}
