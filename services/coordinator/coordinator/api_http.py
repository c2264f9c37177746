"""What every route of the HTTP API shares: its coordinator, problems, bodies, who asked.

Errors are application/problem+json (RFC 9457), with pydantic's field errors under
`errors`. Every time in a body is RFC 3339 in UTC with milliseconds and `Z`
(`convection.timefmt`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError

from contracts import BadMessage, parse_json
from convection.timefmt import rfc3339

if TYPE_CHECKING:
    from coordinator.dead_letter_ops import DeadLetterOps
    from coordinator.operations import Operations
    from sagas import Registry

PROBLEM = "application/problem+json"
"""The media type of every error response."""


class Backend(Protocol):
    """What the API needs of a running coordinator (coordinator.service.Coordinator)."""

    @property
    def registry(self) -> Registry:
        """The saga types it runs."""

    @property
    def operations(self) -> Operations:
        """Operator verbs and queries: the API's only way to sagas."""

    @property
    def dead_letters(self) -> DeadLetterOps:
        """List, show, replay and purge dead letters: the API's only way to them."""

    async def readiness(self) -> dict[str, str]:
        """Check the database, the broker and the schema: name -> "ok" or what is wrong."""

    async def metrics_text(self) -> bytes:
        """Return the Prometheus metrics, gauges refreshed."""

    async def queues(self) -> list[dict[str, object]]:
        """Each participant service's command queue: service, queue, depth, consumers."""


COORDINATOR = web.AppKey("coordinator", Backend)
"""The app key of the coordinator the API serves."""
ACTOR = web.RequestKey("actor", str)
"""Who asked: the token's name, else its role ("loopback" without tokens)."""
OPERATOR = web.RequestKey("operator", bool)
"""Whether who asked holds the operator role (loopback without tokens does)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A route handler."""


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Return an RFC 9457 problem response; `code` (in `extra`) is a stable reason, if any."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(
        body, status=status, content_type=PROBLEM, dumps=dumps, headers=headers
    )


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    return str(value)


def dumps(obj: Any) -> str:
    """Return `obj` as the API's JSON: datetimes in RFC 3339 UTC, anything else odd as text."""
    return json.dumps(obj, default=_encode)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Return a JSON response (datetimes as RFC 3339 UTC with milliseconds and `Z`)."""
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


class ApiProblem(Exception):
    """Raised by a handler's helpers to answer with `response` at once."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def guard(fn: Handler) -> Handler:
    """Wrap a handler so an ApiProblem raised in it becomes its response."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except ApiProblem as exc:
            return exc.response

    wrapper.__doc__ = fn.__doc__
    return wrapper


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """Parse the request body as JSON into `model`, or raise ApiProblem (400 or 422)."""
    raw = await request.read()
    try:
        # The same checks as a message on the broker (depth, NUL, non-finite numbers, UTF-8);
        # the size is the server's to bound (client_max_size: a 413 before we get here).
        data = parse_json(raw, max_bytes=len(raw))
    except BadMessage as exc:
        raise ApiProblem(
            problem(400, "Bad Request", f"the body is not usable JSON: {exc}", code=exc.reason)
        ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiProblem(validation_problem(exc, "the body does not match the schema")) from exc


def validation_problem(exc: ValidationError, detail: str) -> web.Response:
    """Return a 422 problem listing pydantic's field errors (code `invalid_message`)."""
    errors = [dict(e) for e in exc.errors(include_url=False, include_input=False)]
    return errors_problem(errors, detail, code="invalid_message")


def bad_query(parameter: str, message: str) -> web.Response:
    """Return a 400 problem about one query parameter, named first in its detail."""
    error = {"loc": ["query", parameter], "msg": message, "type": "bad_query"}
    return problem(400, "Bad Request", f"{parameter}: {message}", errors=[error], code="bad_query")


def errors_problem(
    errors: list[dict[str, Any]], detail: str, *, code: str = "invalid_input"
) -> web.Response:
    """Return a 422 problem listing field errors (loc, msg, type each), with its `code`."""
    listed = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return problem(422, "Unprocessable Content", detail, errors=listed, code=code)
