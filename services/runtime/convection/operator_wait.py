"""`convection start --wait`: start a saga and wait until it ends; the exit code says how.

While it waits, the saga's status and current step are shown on stderr when stderr is a
terminal (nothing otherwise, so pipes and logs stay clean). The codes are in
`convection.cli_common` (`OUTCOME_EXIT`, `EXIT_WAIT_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from convection import cli_common as common
from convection.cli_output import print_lines


def _busy(saga: dict[str, Any]) -> str:
    running = [s["name"] for s in saga.get("steps", []) if s.get("status") == "running"]
    step = f", step {', '.join(running)}" if running else ""
    return f"{saga['saga_id']}: {saga['status']}{step}"


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """Yield a function that shows a line of progress on stderr (if it is a terminal)."""
    if not sys.stderr.isatty():
        yield lambda _saga: None
        return
    from rich.console import Console

    with Console(stderr=True).status("starting") as status:
        yield lambda saga: status.update(_busy(saga))


def start_and_wait(
    saga_type: str,
    data: dict[str, Any],
    saga_id: str | None,
    idempotency_key: str | None,
    timeout: float | None,
    output: str,
) -> int:
    """Start a saga, wait for its end, print it; return the exit code of its outcome."""
    from convection.client import ApiError, WaitTimedOut

    async def run(show: Any) -> dict[str, Any]:
        client = common.client()
        saga: dict[str, Any] = await client.start(
            saga_type,
            data,
            saga_id=saga_id,
            idempotency_key=idempotency_key,
            wait=True,
            timeout=timeout,
            progress=show,
        )
        return saga

    try:
        with _progress() as show:
            saga = asyncio.run(run(show))
    except WaitTimedOut as exc:
        last = exc.saga
        if output == "json":
            common.emit_json(last)
        sys.stderr.write(
            f"error: {_busy(last)} after {exc.waited:.0f}s: gave up waiting (--timeout)\n"
        )
        return common.EXIT_WAIT_TIMEOUT
    except ApiError as exc:
        code, message = common.explain(exc)
        common.fail(code, message)
    if output == "json":
        common.emit_json(saga)
    else:
        error = saga.get("error") or {}
        why = f" ({error.get('code')}: {error.get('message')})" if error else ""
        print_lines(f"{saga['saga_id']} ({saga_type}): {saga['status']}{why}")
    return common.OUTCOME_EXIT.get(saga["status"], common.EXIT_FAILED)
