"""What the operator commands share: the exit codes, the API client, errors, JSON output.

Exit codes (stable; scripts may rely on them):

    0   done (with --wait: the saga completed)
    1   the API refused the request (bad input, unknown saga type)
    2   wrong use of the command line, a bad filter, a batch not confirmed
    3   no such saga or step
    4   not allowed in the saga's current state (a batch: some sagas refused)
    5   the API is unreachable or failing
    6   a missing or wrong token, or a role that may not do this
    7   --wait: the saga compensated
    8   --wait: the saga was cancelled
    9   --wait: the saga failed
    10  --wait: a compensation failed (the saga waits for an operator)
    11  --wait: the saga was abandoned
    12  --wait: the saga had not ended when --timeout ran out
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from convection.client import Client

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5
EXIT_AUTH = 6
EXIT_COMPENSATED = 7
EXIT_CANCELLED = 8
EXIT_FAILED = 9
EXIT_COMPENSATION_FAILED = 10
EXIT_ABANDONED = 11
EXIT_WAIT_TIMEOUT = 12

OUTCOME_EXIT = {
    "completed": EXIT_OK,
    "compensated": EXIT_COMPENSATED,
    "cancelled": EXIT_CANCELLED,
    "failed": EXIT_FAILED,
    "compensation_failed": EXIT_COMPENSATION_FAILED,
    "abandoned": EXIT_ABANDONED,
}
"""The exit code of `start --wait` for each way a saga ends."""

OutputOpt = typer.Option("text", "--output", "-o", help="text (a table, or plain lines) or json.")
"""The `-o/--output` option every command takes."""


def fail(code: int, message: str) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def check_output(output: str) -> None:
    """Exit 2 unless `output` is text or json."""
    if output not in ("text", "json"):
        fail(EXIT_USAGE, f"unknown output {output!r}: use text or json")


def emit_json(data: Any) -> None:
    """Print `data` as indented JSON."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def client() -> Client:
    """Return a client of the API at CONVECTION_API_URL with CONVECTION_API_TOKEN."""
    from convection.client import Client

    url = os.environ.get("CONVECTION_API_URL", "http://127.0.0.1:8080")
    return Client(url, os.environ.get("CONVECTION_API_TOKEN"))


def exit_code(status: int, *, bad_request: int = EXIT_REFUSED) -> int:
    """Return the exit code of an API error status (0: unreachable)."""
    if status == 0 or status >= 500:
        return EXIT_UNREACHABLE
    if status == 400:
        return bad_request
    return {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT}.get(
        status, EXIT_REFUSED
    )


def explain(exc: Exception, *, bad_request: int = EXIT_REFUSED) -> tuple[int, str]:
    """Return the exit code and the message of a failed API call."""
    from convection.client import ApiError, Unreachable

    if isinstance(exc, Unreachable):
        hint = "Is the coordinator running? Set CONVECTION_API_URL."
        return EXIT_UNREACHABLE, f"{exc.detail}\n{hint}"
    if isinstance(exc, ApiError):
        code = exit_code(exc.status, bad_request=bad_request)
        hint = "\nSet CONVECTION_API_TOKEN to a token with the right role." if code == 6 else ""
        return code, f"{exc}{hint}"
    raise exc


def call(
    fn: Callable[[Client], Coroutine[Any, Any, Any]], *, bad_request: int = EXIT_REFUSED
) -> Any:
    """Run one API call; turn its failure into a message and the documented exit code.

    `bad_request` is the exit code of a 400: 1 for a refused body, 2 for a bad filter.
    """
    from convection.client import ApiError

    try:
        return asyncio.run(fn(client()))
    except ApiError as exc:
        code, message = explain(exc, bad_request=bad_request)
        fail(code, message)
