"""Routes as data, and the request helpers every API module uses.

Each API class lists its `Route`s; the application registers them and keeps the table, so the
middlewares know each call's operation name (for faults) and whether it needs a token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from vim_sim.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler."""

ModelT = TypeVar("ModelT", bound=BaseModel)

COMPUTE_PATH = "/compute/v2.1"
NETWORK_PATH = "/network/v2.0"
IMAGE_PATH = "/image/v2"
IDENTITY_PATH = "/identity/v3"


@dataclass(frozen=True)
class Route:
    """One endpoint.

    Attributes:
        method: HTTP method.
        path: aiohttp path pattern.
        handler: The handler.
        operation: Name used by fault injection; None for admin endpoints, which faults never hit.
        auth: Whether the call needs a valid `X-Auth-Token`.
    """

    method: str
    path: str
    handler: Handler
    operation: str | None = None
    auth: bool = True


def base_url(request: web.Request) -> str:
    """Return the scheme and authority the client used to reach us."""
    return f"{request.scheme}://{request.host}"


async def read_model(
    request: web.Request, model: type[ModelT], bad_request: Callable[[str], ApiError]
) -> ModelT:
    """Parse the JSON body into `model`, raising `bad_request(message)` when it does not fit."""
    try:
        data: Any = json.loads(await request.text())
    except ValueError as exc:
        raise bad_request(f"Malformed request body: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise bad_request(f"Invalid input for field/attribute {where}: {error['msg']}") from exc


def query_filters(request: web.Request, name: str) -> list[str]:
    """Return the values of a query parameter that may repeat or hold a comma-separated list."""
    values: list[str] = []
    for raw in request.query.getall(name, []):
        values.extend(part for part in raw.split(",") if part)
    return values
