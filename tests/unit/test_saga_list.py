"""The one saga-list query (`queries.list_sagas` through `Operations`' filter), on SQLite and on
the real PostgreSQL: every filter, their combination, and keyset pages without gaps or repeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from convection.db import make_engine
from coordinator.store import SagaFilter, Store
from coordinator.store.schema import upgrade_engine
from tests.unit.world import T0, World, example


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'list.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = make_engine(db_url)
    await upgrade_engine(engine)
    world = World()
    # Three at T0 exactly (ties broken by id), the rest a minute apart.
    failing = {"vdus:vnf-app": "failed"}
    plan = [
        ("ns.instantiate", "ns-a", {"ns_id": "ns-a", "vim_account_id": "vim-1"}, {}, 0),
        ("ns.instantiate", "ns-b", {"ns_id": "ns-b", "vim_account_id": "vim-2"}, failing, 0),
        ("ns.instantiate", "ns-c", {"ns_id": "ns-c", "vim_account_id": "vim-1"}, {}, 0),
        ("vim-account.create", "vim-x", {"vim_account_id": "vim-1"}, {"validate": "failed"}, 60),
        ("vim-account.create", "vim-y", {"vim_account_id": "vim-2"}, {}, 120),
    ]
    store = Store(engine)
    try:
        for saga_type, saga_id, changes, outcomes, later in plan:
            world.now = T0 + timedelta(seconds=later)
            world.start(saga_type, saga_id, example(saga_type, **changes))
            world.drain(outcomes)
            async with store.transaction() as conn:
                assert await store.insert_saga(conn, world.sagas[saga_id])
        yield store
    finally:
        await engine.dispose()


async def _ids(store: Store, f: SagaFilter) -> list[str]:
    async with store.engine.connect() as conn:
        rows = await store.list_sagas(conn, f, T0 + timedelta(hours=1))
    return [r["saga_id"] for r in rows]


async def test_newest_first_ties_by_id(store: Store) -> None:
    assert await _ids(store, SagaFilter()) == ["vim-y", "vim-x", "ns-a", "ns-b", "ns-c"]


async def test_each_filter(store: Store) -> None:
    assert await _ids(store, SagaFilter(statuses=("completed",))) == ["vim-y", "ns-a", "ns-c"]
    assert await _ids(store, SagaFilter(statuses=("compensated",))) == ["ns-b"]
    assert await _ids(store, SagaFilter(statuses=("failed",))) == ["vim-x"]
    assert await _ids(store, SagaFilter(saga_type="vim-account.create")) == ["vim-y", "vim-x"]
    assert await _ids(store, SagaFilter(resource="ns:ns-b")) == ["ns-b"]
    assert await _ids(store, SagaFilter(resource="ns:ns")) == []
    vim1 = SagaFilter(input_fields=((("vim_account_id",), "vim-1"),))
    assert await _ids(store, vim1) == ["vim-x", "ns-a", "ns-c"]
    nested = SagaFilter(input_fields=((("credentials", "project"), "osm"),))
    assert await _ids(store, nested) == ["vim-y", "vim-x"]
    listed = SagaFilter(input_fields=((("vnfs", 0, "member"), "vnf-lb"),))
    assert await _ids(store, listed) == ["ns-a", "ns-b", "ns-c"]
    number = SagaFilter(input_fields=((("vnfs", 0, "vdus", 0, "count"), "2"),))
    assert await _ids(store, number) == ["ns-a", "ns-b", "ns-c"]
    assert await _ids(store, SagaFilter(error_code="boom")) == ["vim-x", "ns-b"]
    assert await _ids(store, SagaFilter(error_code="nope")) == []
    after = SagaFilter(started_after=T0 + timedelta(seconds=60))
    assert await _ids(store, after) == ["vim-y", "vim-x"]
    before = SagaFilter(started_before=T0 + timedelta(seconds=60))
    assert await _ids(store, before) == ["ns-a", "ns-b", "ns-c"]
    # Nothing has a step past its deadline here: every saga is not stuck.
    assert await _ids(store, SagaFilter(stuck=True)) == []
    assert len(await _ids(store, SagaFilter(stuck=False))) == 5


async def test_filters_combine(store: Store) -> None:
    f = SagaFilter(
        statuses=("completed", "failed"),
        saga_type="ns.instantiate",
        input_fields=((("vim_account_id",), "vim-1"),),
    )
    assert await _ids(store, f) == ["ns-a", "ns-c"]


async def test_keyset_pages_cover_everything_once(store: Store) -> None:
    everything = await _ids(store, SagaFilter())
    seen: list[str] = []
    f = SagaFilter(limit=2)
    while True:
        async with store.engine.connect() as conn:
            rows = await store.list_sagas(conn, f, T0)
        seen += [r["saga_id"] for r in rows]
        if len(rows) < 2:
            break
        f = replace(f, after=(rows[-1]["created_at"], rows[-1]["saga_id"]))
    assert seen == everything
