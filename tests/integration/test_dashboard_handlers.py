"""The dashboard's handlers on a real coordinator (in-process broker, SQLite): pages, auth, CSP.

No browser here (tests/e2e/test_dashboard.py drives one): these check what the server
answers, page by page, and what it refuses: no session, a reader's action, another origin,
a missing CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from yarl import URL

from contracts import topology
from convection.db import make_engine
from convection.transport import MemoryBroker, open_transport
from coordinator.api import ApiServer, ApiSettings
from coordinator.service import Coordinator
from coordinator.store import DeadLetterFilter, upgrade_engine
from coordinator.ui.app import CSP
from sagas import osm_registry
from tests.integration.coord_support import Participant, eventually, settings
from tests.unit.world import OSM_TOPOLOGY, example

OPERATOR, READER = "op-token", "read-token"
TOKENS: dict[str, Any] = {OPERATOR: {"role": "operator", "name": "alice"}, READER: "reader"}


@dataclass
class Ui:
    url: str
    coordinator: Coordinator
    participant: Participant
    fail: set[str]

    def session(self, token: str | None) -> aiohttp.ClientSession:
        """A browser-like session: its cookie holds `token`, like after signing in."""
        jar = aiohttp.CookieJar(unsafe=True)
        http = aiohttp.ClientSession(cookie_jar=jar)
        if token is not None:
            jar.update_cookies({"convection_ui": token}, response_url=URL(self.url + "/ui/"))
        return http

    async def get(self, token: str | None, path: str) -> tuple[int, str, Any]:
        async with (
            self.session(token) as http,
            http.get(self.url + path, allow_redirects=False) as resp,
        ):
            return resp.status, await resp.text(), resp.headers

    async def post(
        self, token: str | None, path: str, form: dict[str, str], *, origin: str | None = "own"
    ) -> tuple[int, str, Any]:
        headers = {}
        if origin is not None:
            headers["Origin"] = self.url if origin == "own" else origin
        async with (
            self.session(token) as http,
            http.post(self.url + path, data=form, headers=headers, allow_redirects=False) as resp,
        ):
            return resp.status, await resp.text(), resp.headers


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has a CSRF field"
    return match.group(1)


@pytest_asyncio.fixture
async def ui(tmp_path: Path) -> AsyncIterator[Ui]:
    broker = MemoryBroker()
    db_url = f"sqlite+aiosqlite:///{tmp_path}/ui.db"
    engine = make_engine(db_url)
    await upgrade_engine(engine)
    async with open_transport("memory://", OSM_TOPOLOGY, memory_broker=broker) as transport:
        participant = Participant(transport)
        fail: set[str] = set()

        def choose(cmd: Any) -> Any:
            # The sagas in `fail` fail on their first step, as an NS on a missing account.
            if cmd.saga_id == "held" and cmd.step == "networks":
                return "hold"  # never answered: the saga keeps running, and its locks
            return "failed" if cmd.saga_id in fail and cmd.step == "vim-account" else None

        participant.choose = choose
        coordinator = Coordinator(
            settings("memory://", db_url),
            registry=osm_registry(),
            transport=transport,
            db_engine=engine,
        )
        await coordinator.start()
        await participant.start()
        server = ApiServer(
            coordinator,
            ApiSettings(port=0, tokens=TOKENS, jaeger_url="http://jaeger.example:16686"),
        )
        try:
            yield Ui(await server.start(), coordinator, participant, fail)
        finally:
            await server.stop()
            await participant.stop()
            await coordinator.stop()
    await engine.dispose()


async def _saga(ui: Ui, saga_id: str, **changes: Any) -> None:
    data = example("ns.instantiate", ns_id=f"ns-{saga_id}", **changes)
    started = await ui.coordinator.operations.start("ns.instantiate", data, saga_id=saga_id)
    assert started.kind == "created"

    async def ended() -> bool:
        view = await ui.coordinator.operations.get_saga(saga_id)
        return view is not None and view.state.status.value in ("completed", "failed")

    await eventually(ended)


async def test_every_answer_has_the_strict_csp_and_no_inline_script(ui: Ui) -> None:
    await _saga(ui, "csp-1")
    for path in (
        "/ui/login",
        "/ui/sagas",
        "/ui/sagas/csp-1",
        "/ui/types",
        "/ui/types/ns.instantiate",
        "/ui/stats",
        "/ui/locks",
        "/ui/dead-letters",
        "/ui/participants",
    ):
        status, page, headers = await ui.get(OPERATOR, path)
        assert status == 200, (path, page[:500])
        assert headers["Content-Security-Policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert headers["X-Frame-Options"] == "DENY"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), f"inline script on {path}"
        assert not re.search(r"\sstyle=", page), f"style attribute on {path}"
        assert not re.search(r"\son[a-z]+=", page), f"inline handler on {path}"
    status, _, headers = await ui.get(None, "/ui/static/dashboard.js")
    assert status == 200 and headers["Content-Security-Policy"] == CSP


async def test_without_a_session_a_page_sends_to_the_login_and_a_post_is_refused(ui: Ui) -> None:
    status, _, headers = await ui.get(None, "/ui/sagas")
    assert status == 303 and headers["Location"].startswith("/ui/login")
    status, _, _ = await ui.get("wrong-token", "/ui/sagas")
    assert status == 303
    status, _, _ = await ui.post(None, "/ui/sagas/x/retry", {"reason": "r", "confirm": "yes"})
    assert status == 401
    for path in ("/ui", "/ui/"):
        status, _, headers = await ui.get(OPERATOR, path)
        assert status == 303 and headers["Location"] == "/ui/sagas"
    # The API keeps its own check: a dashboard cookie is no bearer token.
    status, _, _ = await ui.get(OPERATOR, "/sagas")
    assert status == 401


async def test_login_keeps_the_token_in_a_strict_httponly_cookie(ui: Ui) -> None:
    status, _, headers = await ui.post(None, "/ui/login", {"token": READER, "next": "/ui/stats"})
    assert status == 303 and headers["Location"] == "/ui/stats"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    status, page, _ = await ui.post(None, "/ui/login", {"token": "nope"})
    assert status == 401 and "not configured" in page
    status, _, headers = await ui.post(None, "/ui/login", {"token": READER, "next": "//evil"})
    assert headers["Location"] == "/ui/sagas", "never sent on to another site"
    status, _, _ = await ui.post(None, "/ui/login", {"token": READER}, origin="http://evil")
    assert status == 403


async def test_a_reader_sees_no_action_and_its_forged_post_is_refused(ui: Ui) -> None:
    ui.fail.add("early")
    await _saga(ui, "early")
    status, page, _ = await ui.get(READER, "/ui/sagas/early")
    assert status == 200 and "failed on purpose" in page
    assert '<form method="post" action="/ui/sagas/early/' not in page
    assert "Operator actions" not in page
    csrf = csrf_of(page)  # the sign-out form's: a reader's CSRF token is real
    form = {"csrf": csrf, "reason": "forged", "confirm": "yes"}
    status, page, _ = await ui.post(READER, "/ui/sagas/early/retry", form)
    assert status == 403 and "operator" in page
    view = await ui.coordinator.operations.get_saga("early")
    assert view is not None and view.state.status.value == "failed"
    # The API refuses it too, whatever a page shows.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            ui.url + "/sagas/early/retry",
            json={"reason": "forged"},
            headers={"Authorization": f"Bearer {READER}"},
        ) as resp,
    ):
        assert resp.status == 403


async def test_an_operator_action_needs_the_origin_the_csrf_token_and_a_confirmation(
    ui: Ui,
) -> None:
    ui.fail.add("retry-me")
    await _saga(ui, "retry-me")
    _, page, _ = await ui.get(OPERATOR, "/ui/sagas/retry-me")
    assert 'action="/ui/sagas/retry-me/retry"' in page
    csrf = csrf_of(page)
    ui.fail.discard("retry-me")
    good = {"csrf": csrf, "reason": "account exists now", "confirm": "yes"}
    status, _, _ = await ui.post(OPERATOR, "/ui/sagas/retry-me/retry", good, origin="http://evil")
    assert status == 403
    status, _, _ = await ui.post(OPERATOR, "/ui/sagas/retry-me/retry", good, origin=None)
    assert status == 403, "neither Origin nor Referer: refused"
    status, _, _ = await ui.post(OPERATOR, "/ui/sagas/retry-me/retry", {**good, "csrf": "0" * 40})
    assert status == 403
    status, page, _ = await ui.post(OPERATOR, "/ui/sagas/retry-me/retry", {**good, "confirm": ""})
    assert status == 422 and "confirmation" in page
    status, _, headers = await ui.post(OPERATOR, "/ui/sagas/retry-me/retry", good)
    assert status == 303 and headers["Location"] == "/ui/sagas/retry-me?did=retry"
    view = await ui.coordinator.operations.get_saga("retry-me")
    retried = [r for r in view.history if r.entry.kind == "operator.retry"]
    assert retried and retried[0].entry.actor == "alice"


async def test_the_list_filters_pages_and_counts(ui: Ui) -> None:
    for i in range(3):
        await _saga(ui, f"page-{i}")
    status, page, _ = await ui.get(READER, "/ui/sagas?limit=2")
    assert status == 200
    assert page.count("data-saga-id=") == 2
    nxt = re.search(r'href="/ui/sagas\?([^"]*cursor=[^"]+)" rel="next"', page)
    assert nxt, "an older page follows"
    status, older, _ = await ui.get(READER, "/ui/sagas?" + nxt.group(1).replace("&amp;", "&"))
    assert older.count("data-saga-id=") == 1
    assert re.search(r'data-status="completed">3<', page)
    status, page, _ = await ui.get(READER, "/ui/sagas?status=failed&status=cancelled")
    assert status == 200 and "data-saga-id=" not in page
    status, page, _ = await ui.get(READER, "/ui/sagas?field=ns_id&value=ns-page-1")
    assert page.count("data-saga-id=") == 1 and "page-1" in page
    status, page, _ = await ui.get(READER, "/ui/sagas?status=bogus")
    assert status == 400 and "unknown status" in page
    status, live, _ = await ui.get(READER, "/ui/sagas/live?limit=2")
    assert status == 200 and live.startswith('<div id="live"') and "hx-trigger" in live


async def test_the_saga_page_draws_its_timeline_and_links_the_trace(ui: Ui) -> None:
    await _saga(ui, "drawn")
    _, page, _ = await ui.get(READER, "/ui/sagas/drawn")
    bars = re.findall(r'<rect class="bar fwd out-succeeded"[^>]*data-step="([^"]+)"', page)
    assert "vim-account" in bars and "mark-ready" in bars
    assert "http://jaeger.example:16686/trace/" in page
    assert "[redacted]" in page or "[sealed secret]" in page, "the VIM password is not shown"


async def test_the_type_graph_and_the_other_pages(ui: Ui) -> None:
    await _saga(ui, "typed")
    _, page, _ = await ui.get(READER, "/ui/types/ns.instantiate")
    assert 'data-grouping="for_each"' in page
    assert 'data-step="mark-ready" data-kind="pivot"' in page
    _, page, _ = await ui.get(READER, "/ui/stats?window=1h")
    assert "data-series=" in page and 'class="step-bar' in page
    _, page, _ = await ui.get(READER, "/ui/participants")
    assert 'data-service="vim"' in page and 'data-service="lcm"' in page
    status, _, _ = await ui.get(READER, "/ui/types/no.such")
    assert status == 404


async def test_dead_letters_are_listed_and_an_operator_purges_one(ui: Ui) -> None:
    transport = ui.coordinator.transport
    exchange, key = topology.SAGAS_EXCHANGE, topology.START_ROUTING_KEY
    await transport.publish(exchange, key, b"{not json", message_id="ui-dead-1")

    async def listed() -> bool:
        page = await ui.coordinator.dead_letters.list_dead_letters(DeadLetterFilter())
        return any(d["message_id"] == "ui-dead-1" for d in page.items)

    await eventually(listed)
    _, page, _ = await ui.get(READER, "/ui/dead-letters")
    assert "ui-dead-1" in page and 'method="post" action="/ui/dead-letters' not in page
    _, page, _ = await ui.get(OPERATOR, "/ui/dead-letters")
    [row_id] = re.findall(r'data-dead-letter="(\d+)"', page)
    form = {"csrf": csrf_of(page), "id": row_id, "reason": "bad JSON", "confirm": "yes"}
    status, _, headers = await ui.post(READER, "/ui/dead-letters/purge", form)
    assert status == 403
    status, _, headers = await ui.post(OPERATOR, "/ui/dead-letters/purge", form)
    assert status == 303 and headers["Location"] == "/ui/dead-letters?purged=1"
    assert not await listed()


async def test_the_locks_page_and_a_running_saga_page_show_holders_and_poll(ui: Ui) -> None:
    data = example("ns.instantiate", ns_id="ns-held")
    await ui.coordinator.operations.start("ns.instantiate", data, saga_id="held")

    async def running() -> bool:
        view = await ui.coordinator.operations.get_saga("held")
        return view is not None and any(
            s.forward.status.value == "running" for s in view.state.steps
        )

    await eventually(running)
    _, page, _ = await ui.get(READER, "/ui/locks")
    assert 'data-resource="ns:ns-held"' in page and "held" in page and "exclusive" in page
    _, page, _ = await ui.get(READER, "/ui/sagas/held")
    assert 'hx-get="/ui/sagas/held/live"' in page, "a running saga's page polls"
    assert 'class="bar fwd out-running"' in page
    status, live, _ = await ui.get(READER, "/ui/sagas/held/live")
    assert status == 200 and live.startswith('<div id="saga-live"')
