"""The HTTP API under hostile input: every case of the corpus that targets it, and the requests
that once got a plain-text 500, answer a problem document with a 4xx and a stable `code`.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.hostile.corpus import API, cases
from tests.integration.api_support import OPERATOR, Api, serving_api
from tests.unit.world import example

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]
PROBLEM = "application/problem+json"
HUGE = "1" + "0" * 20
STATUS = {
    "too_large": 413,
    "conflict": 409,
    "unknown_saga_type": 422,
    "invalid_input": 422,
    "invalid_message": 422,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[Api]:
    # The default body limit: the corpus's at-limit case is exactly that many bytes.
    async with serving_api(urls) as served:
        yield served


async def _raw(api: Api, method: str, path: str, data: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"}
    payload = io.BytesIO(data) if data is not None else None
    async with api.session.request(method, api.url + path, data=payload, headers=headers) as resp:
        assert resp.content_type == PROBLEM or resp.status < 400, (resp.status, await resp.text())
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


async def test_every_corpus_case_for_the_api_is_a_4xx_with_its_reason(api: Api) -> None:
    account = example("vim-account.create", vim_account_id="vim-hostile-api")
    saga_id = await api.start("vim-account.create", account, saga_id="hostile-api")
    await api.until(saga_id, "completed")
    chosen = [c for c in cases(saga_id, "validate", "unused") if API in c.targets]
    assert len(chosen) >= 20, "the corpus lost its API cases"
    wrong = []
    for case in chosen:
        status, body = await _raw(api, "POST", "/sagas", case.body)
        expected = STATUS.get(case.expect, 400)
        if status != expected or body.get("code") != case.expect:
            wrong.append((case.name, case.expect, expected, status, body.get("code")))
    assert wrong == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/sagas?cursor={HUGE}", 400, "bad_query"),
        (f"/sagas?limit={HUGE}", 400, "bad_query"),
        (f"/stats?window={HUGE}", 400, "bad_query"),
        ("/stats?window=-1", 400, "bad_query"),
        ("/sagas/abc%00def", 400, "nul_character"),
        ("/sagas/abc%00def/steps/x/skip", 400, "nul_character"),
        (f"/dead-letters?cursor={HUGE}", 400, "bad_query"),
        (f"/dead-letters/{HUGE}", 404, None),
        ("/dead-letters/%C2%B2", 404, None),  # a superscript two: a digit, but not ASCII
    ],
)
async def test_requests_that_once_got_a_500_get_a_problem(
    api: Api, path: str, status: int, code: str | None
) -> None:
    method = "POST" if path.endswith("/skip") else "GET"
    data = b'{"reason": "x"}' if method == "POST" else None
    got, body = await _raw(api, method, path, data)
    assert (got, body.get("code")) == (status, code), body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "too_deep"),
        (b'{"saga_type": "vim-account.create", "input": {"name": "a\\u0000b"}}', "nul_character"),
        (b'{"saga_type": "vim-account.create", "input": {"n": NaN}}', "non_finite_number"),
    ],
)
async def test_a_body_the_broker_would_refuse_is_refused_by_the_api_too(
    api: Api, body: bytes, code: str
) -> None:
    for path in ("/sagas", "/sagas/somebody/cancel"):
        status, problem = await _raw(api, "POST", path, body)
        assert (status, problem["code"]) == (400, code), (path, problem)
