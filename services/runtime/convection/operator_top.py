"""`convection top`: sagas in flight and recent failures, redrawn in place; `q` quits.

Each saga shows its age (since it was created) and its error (`code: message`). While the
live view runs, the terminal is read in cbreak mode (keys arrive one at a time, unechoed)
and restored on the way out, so `q` quits at once; Ctrl-C does too. `--once` prints a single
frame (plain lines when stdout is not a terminal, or `-o json`) and exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from convection import cli_common as common
from convection.cli_output import Table, print_tables, rich_table, terminal
from convection.timefmt import age, parse, rfc3339

_COLUMNS = ("saga_id", "type", "status", "step", "age", "error")
_FAILED = "failed,compensation_failed,compensated"


def _fetch() -> dict[str, Any]:
    from convection.client import ApiError

    async def frame(client: Any) -> dict[str, Any]:
        running = await client.list(status="running", limit="20")
        comp = await client.list(status="compensating", limit="10")
        pending = await client.list(status="pending", limit="10")
        failed = (await client.list(status=_FAILED, limit="10"))["items"]
        try:
            failed += (await client.list(status="abandoned", limit="10"))["items"]
        except ApiError as exc:
            # A coordinator older than the abandon verb knows no such status.
            if exc.status != 400:
                raise
        failed.sort(key=lambda s: s["created_at"], reverse=True)
        return {
            "at": rfc3339(datetime.now(UTC)),
            "in_flight": running["items"] + comp["items"] + pending["items"],
            "failures": failed[:10],
        }

    result: dict[str, Any] = common.call(frame)
    return result


def _rows(items: list[dict[str, Any]], now: datetime) -> list[Sequence[str]]:
    rows: list[Sequence[str]] = []
    for s in items:
        try:
            since = age((now - parse(s["created_at"])).total_seconds())
        except (KeyError, TypeError, ValueError):
            since = ""
        error = s.get("error") or {}
        rows.append(
            [
                s["saga_id"],
                s["saga_type"],
                s["status"] + (" (parked)" if s.get("parked") else ""),
                s.get("current_step") or "",
                since,
                f"{error.get('code', '')}: {error.get('message', '')}" if error else "",
            ]
        )
    return rows


def _tables(data: dict[str, Any]) -> tuple[Table, Table]:
    now = parse(data["at"])
    flying, failures = _rows(data["in_flight"], now), _rows(data["failures"], now)
    status = frozenset({2})
    return (
        Table(f"in flight at {data['at']}", _COLUMNS, flying, statuses=status),
        Table("recent failures", _COLUMNS, failures, statuses=status),
    )


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """Yield `wait(seconds) -> key or None`: stdin in cbreak mode when it is a terminal."""
    if not sys.stdin.isatty():

        def sleep(seconds: float) -> str | None:
            time.sleep(seconds)
            return None

        yield sleep
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(seconds: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], seconds)
        # os.read, not sys.stdin: a buffered read could hide the next key from select.
        return os.read(fd, 64).decode(errors="replace") if ready else None

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _live(interval: float) -> None:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    def frame() -> Group:
        return Group(*(rich_table(t) for t in _tables(_fetch())), Text("q quits", style="dim"))

    console = Console()
    try:
        with _keys() as wait, Live(frame(), console=console, refresh_per_second=4) as live:
            next_at = time.monotonic() + interval
            while True:
                keys = wait(max(next_at - time.monotonic(), 0.0)) or ""
                if "q" in keys.lower():
                    return
                if time.monotonic() >= next_at:
                    live.update(frame())
                    next_at = time.monotonic() + interval
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    """Add `top` to the root command line."""

    @app.command()
    def top(
        interval: float = typer.Option(2.0, min=0.1, help="Seconds between refreshes."),
        once: bool = typer.Option(False, help="Print one frame and exit (for scripts)."),
        output: str = common.OutputOpt,
    ) -> None:
        """A live view of sagas in flight and recent failures, with age and error; q quits."""
        common.check_output(output)
        if output == "json":
            if not once:
                common.fail(common.EXIT_USAGE, "-o json needs --once")
            common.emit_json(_fetch())
            return
        if once or not terminal():
            print_tables(*_tables(_fetch()))
            return
        _live(interval)
