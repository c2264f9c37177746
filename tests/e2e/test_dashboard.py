"""The dashboard in a real headless Chromium, against the real services on RabbitMQ and PostgreSQL.

One stack for the module (tests/e2e/browser.py): the coordinator with its dashboard, the three
adapters and the VIM simulator, each its own process. The story the pages show: an account
(completes), an NS over the VIM's quota (compensates), an NS started before its account
existed (fails; an operator retries it from its page once the account exists), and one on
an account that never exists (stays failed, for the reader). Each test saves a screenshot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext

from tests.e2e.browser import OPERATOR, READER, Osm, browser, ns, osm, shot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.amqp,
    pytest.mark.postgres,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Osm]:
    amqp_url, pg_url = urls
    async with osm(tmp_path_factory.mktemp("dashboard") / "logs", amqp_url, pg_url) as s:
        await s.start("vim-account.create", "acct", s.account("vim-osm-1"))
        assert await s.ended("acct") == "completed"
        big = json.loads((ROOT / "sagas/examples/ns-instantiate-over-quota.json").read_text())
        await s.start("ns.instantiate", "big", big)
        await s.start("ns.instantiate", "early", ns("ns-early", "vim-late"))
        await s.start("ns.instantiate", "never", ns("ns-never", "vim-never"))
        assert await s.ended("big", within=120) == "compensated"
        assert await s.ended("early") == "failed"
        assert await s.ended("never") == "failed"
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chrome() -> AsyncIterator[Browser]:
    async with browser() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def operator(chrome: Browser, stack: Osm) -> AsyncIterator[BrowserContext]:
    context = await chrome.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await stack.sign_in(page, OPERATOR)
    yield context
    await context.close()


async def test_the_list_updates_by_itself_while_a_saga_runs(
    operator: BrowserContext, stack: Osm
) -> None:
    page = await operator.new_page()
    await page.goto(stack.api + "/ui/sagas")
    await page.evaluate("window.notReloaded = true")
    completed_before = int(await page.inner_text("[data-status=completed].n"))
    await stack.start("ns.instantiate", "live", ns("ns-live", "vim-osm-1"))
    row = page.locator("tr[data-saga-id=live]")
    await row.wait_for(timeout=30_000)
    assert await row.get_attribute("data-status") in ("pending", "running")
    await page.wait_for_selector("tr[data-saga-id=live][data-status=completed]", timeout=90_000)
    assert await page.evaluate("window.notReloaded") is True, "updated without a reload"
    assert int(await page.inner_text("[data-status=completed].n")) == completed_before + 1
    await shot(page, "list-live")


async def test_the_over_quota_ns_shows_its_compensations_in_reverse_order(
    operator: BrowserContext, stack: Osm
) -> None:
    page = await operator.new_page()
    await page.goto(stack.api + "/ui/sagas/big")
    assert await page.inner_text("#saga-status") == "compensated"

    async def bars(leg: str) -> list[dict[str, Any]]:
        found = await page.eval_on_selector_all(
            f"#timeline rect[data-leg={leg}]",
            "els => els.map(e => ({step: e.dataset.step, outcome: e.dataset.outcome,"
            " at: Number(e.dataset.offsetMs), fill: getComputedStyle(e).fill}))",
        )
        return list(found)

    forward, undone = await bars("forward"), await bars("compensation")
    assert undone, "the compensations are drawn"
    assert {b["fill"] for b in undone}.isdisjoint(
        {b["fill"] for b in forward if b["outcome"] == "succeeded"}
    )
    started = {b["step"]: b["at"] for b in forward}
    comp = {b["step"]: b["at"] for b in undone if b["outcome"] == "succeeded"}
    assert {"ns-record", "networks"} <= set(comp), comp
    for a in comp:
        for b in comp:
            if started[a] < started[b]:
                assert comp[a] >= comp[b], f"{a} ran before {b}, so it is undone after it"
    assert comp["ns-record"] > comp["networks"]
    # Numbered on the drawing as they started: the NS record, created first, is undone last.
    order = await page.eval_on_selector_all(
        "#timeline rect[data-undo-order]",
        "els => Object.fromEntries(els.map(e => [e.dataset.step, Number(e.dataset.undoOrder)]))",
    )
    assert order["ns-record"] == len(order) and order["ns-record"] > order["networks"]
    assert await page.locator("#timeline text.undo-order").count() == len(undone)
    failed = [b for b in forward if b["outcome"] == "failed"]
    assert failed, "the leg over the quota is drawn as failed"
    await shot(page, "saga-over-quota")


async def test_an_operator_retries_a_failed_saga_from_its_page(
    operator: BrowserContext, stack: Osm
) -> None:
    await stack.start("vim-account.create", "late", stack.account("vim-late"))
    assert await stack.ended("late") == "completed"
    page = await operator.new_page()
    await page.goto(stack.api + "/ui/sagas/early")
    assert await page.inner_text("#saga-status") == "failed"
    form = page.locator("form[data-verb=retry]")
    await form.locator("input[name=reason]").fill("the VIM account exists now")
    await form.locator("input[name=confirm]").check()
    await form.locator("button[type=submit]").click()
    await page.wait_for_url("**/ui/sagas/early?did=retry")
    assert "accepted" in await page.inner_text("#notice")
    await page.wait_for_selector("#saga-status:text-is('completed')", timeout=120_000)
    history = await page.inner_text("table.history")
    assert "operator.retry" in history and "olga" in history
    await shot(page, "saga-retried")


async def test_a_reader_sees_no_buttons_and_a_forged_post_is_refused(
    chrome: Browser, stack: Osm
) -> None:
    context = await chrome.new_context()
    page = await context.new_page()
    await stack.sign_in(page, READER)
    await page.goto(stack.api + "/ui/sagas/never")
    assert await page.inner_text("#saga-status") == "failed"
    assert await page.locator("form.verb").count() == 0
    assert await page.locator("section.actions").count() == 0
    assert await page.locator("button", has_text="Retry").count() == 0
    csrf = await page.get_attribute("input[name=csrf]", "value")
    forged = await context.request.post(
        stack.api + "/ui/sagas/never/retry",
        form={"csrf": csrf or "", "reason": "forged", "confirm": "yes"},
        headers={"Origin": stack.api},
        max_redirects=0,
    )
    assert forged.status == 403, await forged.text()
    assert await stack.status("never") == "failed"
    await shot(page, "reader-no-buttons")
    await context.close()


async def test_the_ns_instantiate_graph_shows_its_parallel_vnf_group_and_pivot(
    operator: BrowserContext, stack: Osm
) -> None:
    page = await operator.new_page()
    await page.goto(stack.api + "/ui/types/ns.instantiate")
    groups = page.locator("#definition g.group[data-grouping=for_each]")
    assert await groups.count() >= 1
    assert "in parallel" in (await groups.first.text_content() or "")
    pivot = page.locator("#definition g.node[data-kind=pivot]")
    assert await pivot.count() == 1
    assert "mark-ready" in (await pivot.text_content() or "")
    assert "undo:" in (await page.locator("#definition").text_content() or "")
    await shot(page, "type-ns-instantiate")


async def test_the_stats_page_draws_its_plots(operator: BrowserContext, stack: Osm) -> None:
    page = await operator.new_page()
    await page.goto(stack.api + "/ui/stats?window=1h")
    card = page.locator("section.stat[data-saga-type='ns.instantiate']")
    await card.locator(".timeseries[data-drawn=true] canvas").wait_for(timeout=15_000)
    series = json.loads(await card.locator(".timeseries").get_attribute("data-series") or "{}")
    assert sum(series["started"]) >= 3
    box = await card.locator(".timeseries canvas").first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    seconds = [
        float(v or 0)
        for v in await card.locator("svg.step-bars rect.step-bar").evaluate_all(
            "els => els.map(e => e.dataset.seconds)"
        )
    ]
    assert seconds and max(seconds) > 0
    await shot(page, "stats")


async def test_the_list_and_a_saga_page_read_with_javascript_off(
    chrome: Browser, stack: Osm
) -> None:
    context = await chrome.new_context(java_script_enabled=False)
    page = await context.new_page()
    await stack.sign_in(page, READER)
    assert await page.locator("tr[data-saga-id=big]").count() == 1
    await page.click("tr[data-saga-id=big] a")
    await page.wait_for_url("**/ui/sagas/big")
    assert await page.inner_text("#saga-status") == "compensated"
    assert await page.locator("#timeline rect[data-leg=compensation]").count() >= 2
    assert "ns-record" in await page.inner_text("table.steps")
    await shot(page, "saga-javascript-off")
    await context.close()
