"""A small client of the coordinator's HTTP API, used by the operator CLI.

Errors::

    ApiError            the API answered with a problem (status, title, detail, field errors)
     +-- Unreachable    no answer at all: wrong URL, coordinator down, network
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp


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
        json: Any = None,
        params: dict[str, str] | None = None,
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
                    json=json,
                    params=params,
                    headers={**self._headers, **(headers or {})},
                ) as resp,
            ):
                body = await resp.json(content_type=None) if resp.content_length != 0 else None
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
    ) -> Any:
        """Start a saga."""
        body: dict[str, Any] = {"saga_type": saga_type, "input": data}
        if saga_id:
            body["saga_id"] = saga_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self.request("POST", "/sagas", json=body, headers=headers)

    async def list(self, **filters: str) -> Any:
        """List sagas with filters (status, saga_type, since, until, stuck, limit, cursor)."""
        return await self.request("GET", "/sagas", params={k: v for k, v in filters.items() if v})

    async def show(self, saga_id: str) -> Any:
        """One saga with its steps and history."""
        return await self.request("GET", f"/sagas/{saga_id}")

    async def verb(self, saga_id: str, verb: str, reason: str, step: str | None = None) -> Any:
        """Cancel, retry or skip (a step's failed compensation), with a reason."""
        path = f"/sagas/{saga_id}/steps/{step}/skip" if step else f"/sagas/{saga_id}/{verb}"
        return await self.request("POST", path, json={"reason": reason})

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
        return await self.request("POST", f"/dead-letters/{dead_letter_id}/replay", json=body)

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
        return await self.request("POST", "/dead-letters/purge", json=body)
