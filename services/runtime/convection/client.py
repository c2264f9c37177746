"""A small client of the coordinator's HTTP API, used by the operator CLI and the demo.

Saga ids and step names are percent-encoded in paths (a `/` in an id travels as `%2F`).

Errors::

    ApiError            the API answered with a problem (status, title, detail, field errors)
     +-- Unreachable    no answer at all: wrong URL, coordinator down, network
    WaitTimedOut        `start(..., wait=True)` gave up before the saga ended
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

ENDED = frozenset(
    {"completed", "compensated", "failed", "compensation_failed", "cancelled", "abandoned"}
)
"""Statuses in which a saga never changes on its own: waiting for one of them ends."""


@dataclass
class ApiError(Exception):
    """The API refused the request; `status` is the HTTP status (0 when unreachable)."""

    status: int
    title: str
    detail: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.status} {self.title}" + (f": {self.detail}" if self.detail else "")
        for err in self.errors:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            text += f"\n  {loc or '(body)'}: {err.get('msg', err)}"
        return text


class Unreachable(ApiError):
    """Nothing answered at the API's URL."""


class WaitTimedOut(Exception):
    """A saga had not ended when the wait gave up; `saga` is what it looked like last."""

    def __init__(self, saga: dict[str, Any], waited: float) -> None:
        super().__init__(f"saga {saga.get('saga_id')} is still {saga.get('status')}")
        self.saga = saga
        self.waited = waited


def saga_path(saga_id: str, *rest: str) -> str:
    """Return the API path of a saga (and what follows), every part percent-encoded."""
    return "/".join(["/sagas", *(quote(part, safe="") for part in (saga_id, *rest))])


Progress = Callable[[dict[str, Any]], None]
"""Called with the saga each time a wait looks at it."""


class Client:
    """Calls the coordinator's HTTP API with a bearer token."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body or raise ApiError."""
        url = f"{self._base}{path}"
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.request(
                    method,
                    url,
                    json=body,
                    params=dict(params) if params else None,
                    headers={**self._headers, **(headers or {})},
                ) as resp,
            ):
                raw = await resp.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    # Not ours (a proxy's page, a crash): keep its first words as the detail.
                    if resp.status < 400:
                        raise
                    body = {"detail": raw.decode(errors="replace").strip()[:300]}
                if resp.status >= 400:
                    problem = body if isinstance(body, dict) else {}
                    raise ApiError(
                        resp.status,
                        str(problem.get("title", resp.reason or "error")),
                        str(problem.get("detail", "")),
                        list(problem.get("errors", [])),
                    )
                return body
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(0, "unreachable", f"{url}: {exc}") from exc

    async def start(
        self,
        saga_type: str,
        data: dict[str, Any],
        *,
        saga_id: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds the wait for the saga's end
        progress: Progress | None = None,
    ) -> Any:
        """Start a saga; with `wait`, return the saga once it ended (its `status` says how).

        Without `wait` the answer is the API's `{saga_id, status}`. With it, the saga is
        polled until it reaches one of `ENDED`; `timeout` seconds (None: no limit) bound the
        wait, after which `WaitTimedOut` carries the saga as last seen.
        """
        body: dict[str, Any] = {"saga_type": saga_type, "input": data}
        if saga_id:
            body["saga_id"] = saga_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        started = await self.request("POST", "/sagas", body=body, headers=headers)
        if not wait:
            return started
        return await self.wait(str(started["saga_id"]), timeout=timeout, progress=progress)

    async def wait(
        self,
        saga_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds many polls, not one call
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Poll a saga until it ended; return it, or raise WaitTimedOut after `timeout` s."""
        began = time.monotonic()
        pause = 0.1
        while True:
            saga: dict[str, Any] = await self.show(saga_id)
            if progress is not None:
                progress(saga)
            if saga.get("status") in ENDED:
                return saga
            waited = time.monotonic() - began
            if timeout is not None and waited >= timeout:
                raise WaitTimedOut(saga, waited)
            left = float("inf") if timeout is None else timeout - waited
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 1.0)

    async def list(self, params: Mapping[str, str] | None = None, **filters: str) -> Any:
        """One page of sagas: `{items, next_cursor}` (filters as the API's query parameters)."""
        query = {**(params or {}), **filters}
        return await self.request("GET", "/sagas", params={k: v for k, v in query.items() if v})

    async def list_all(self, params: Mapping[str, str], *, page: int = 500) -> builtins.list[Any]:
        """Every saga matching `params`, following `next_cursor` to the last page."""
        items: builtins.list[Any] = []
        query = {**params, "limit": str(page)}
        while True:
            out = await self.list(query)
            items += out["items"]
            if not out.get("next_cursor"):
                return items
            query["cursor"] = out["next_cursor"]

    async def show(self, saga_id: str) -> Any:
        """One saga with its steps and history."""
        return await self.request("GET", saga_path(saga_id))

    async def verb(self, saga_id: str, verb: str, reason: str, step: str | None = None) -> Any:
        """Cancel, retry, abandon or skip (a step's failed compensation), with a reason."""
        path = saga_path(saga_id, "steps", step, "skip") if step else saga_path(saga_id, verb)
        return await self.request("POST", path, body={"reason": reason})

    async def stats(self, window: int) -> Any:
        """Counts, rates and durations per saga type and step over a window in seconds."""
        return await self.request("GET", "/stats", params={"window": str(window)})

    async def dead_letters(self, **filters: str) -> Any:
        """One page of dead letters (queue, reason, saga_id, replayed, limit, cursor)."""
        params = {k: v for k, v in filters.items() if v}
        return await self.request("GET", "/dead-letters", params=params)

    async def dead_letter(self, dead_letter_id: int) -> Any:
        """One dead letter with its headers and body."""
        return await self.request("GET", f"/dead-letters/{dead_letter_id}")

    async def replay(self, dead_letter_id: int, reason: str, *, again: bool = False) -> Any:
        """Publish a dead letter again to the queue it died in."""
        body: dict[str, Any] = {"reason": reason}
        if again:
            body["again"] = True
        return await self.request("POST", f"/dead-letters/{dead_letter_id}/replay", body=body)

    async def purge(
        self,
        *,
        ids: Sequence[int] = (),
        queue: str | None = None,
        reason: str | None = None,
        replayed: bool | None = None,
    ) -> Any:
        """Delete the dead letters every given selector matches."""
        selectors = {"ids": [*ids] or None, "queue": queue, "reason": reason, "replayed": replayed}
        body = {k: v for k, v in selectors.items() if v is not None}
        return await self.request("POST", "/dead-letters/purge", body=body)
