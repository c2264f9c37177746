"""`convection top`: sagas in flight and recent failures, redrawn in place; `q` quits.

Each saga shows its age (since it was created) and its error (`code: message`). While the
live view runs, the terminal is read in cbreak mode (keys arrive one at a time, unechoed)
and restored on the way out, so `q` quits at once; Ctrl-C does too. `--once` prints a single
frame (plain lines when stdout is not a terminal, or `-o json`) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer

from convection import cli_common as common
from convection.cli_output import Table, print_tables, rich_table, terminal
from convection.timefmt import age, parse, rfc3339

_T = TypeVar("_T")

_COLUMNS = ("saga_id", "type", "status", "step", "age", "error")
_FAILED = "failed,compensation_failed,compensated"


class _CtrlC:
    """Ctrl-C for the live view: it quits even when a fetch swallows the cancellation.

    Installed whatever top inherited: a process started with SIGINT ignored (a background job
    of a shell without job control, as CI starts everything) gets no handler from Python, and
    Ctrl-C did nothing at all. And `asyncio.run` turns a SIGINT into a cancellation of its
    task, and raises KeyboardInterrupt only if that task ends cancelled: a fetch that absorbs
    the cancel (a response completing at the same moment, in a library's wait) returned
    normally and the Ctrl-C was lost. With this handler installed, `asyncio.run` keeps it; a
    SIGINT during a fetch cancels the fetch and is remembered, one between fetches raises.
    """

    def __init__(self) -> None:
        self.hit = False
        self._fetching: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None

    def handler(self, _signum: int, _frame: Any) -> None:
        """Remember the Ctrl-C; cancel the fetch in flight, or raise when there is none."""
        first, self.hit = not self.hit, True
        if self._fetching is None or self._fetching[0].is_closed():
            # Only once: a second Ctrl-C must not cut the terminal's restore short.
            if first:
                raise KeyboardInterrupt
            return
        loop, task = self._fetching
        loop.call_soon_threadsafe(task.cancel)

    async def guard(self, fetch: Coroutine[Any, Any, _T]) -> _T:
        """Await `fetch` where a Ctrl-C can cancel it."""
        task = asyncio.current_task()
        assert task is not None
        self._fetching = (asyncio.get_running_loop(), task)
        try:
            return await fetch
        except BaseException:
            if self.hit:
                # A fetch that failed after a Ctrl-C (cancelled, or the API went away) quits
                # quietly, as the Ctrl-C asked, not with the fetch's error.
                raise KeyboardInterrupt from None
            raise
        finally:
            self._fetching = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[_CtrlC]:
        """Handle SIGINT here while the live view runs; the previous handler afterwards."""
        previous = signal.signal(signal.SIGINT, self.handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _fetch(ctrl_c: _CtrlC | None = None) -> dict[str, Any]:
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

    if ctrl_c is None:
        result: dict[str, Any] = common.call(frame)
    else:
        result = common.call(lambda client: ctrl_c.guard(frame(client)))
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

    def wait(seconds: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], seconds)
        # os.read, not sys.stdin: a buffered read could hide the next key from select.
        return os.read(fd, 64).decode(errors="replace") if ready else None

    try:
        tty.setcbreak(fd)
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _live(interval: float) -> None:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    ctrl_c = _CtrlC()

    def frame() -> Group:
        data = _fetch(ctrl_c)
        if ctrl_c.hit:
            raise KeyboardInterrupt
        return Group(*(rich_table(t) for t in _tables(data)), Text("q quits", style="dim"))

    console = Console()
    try:
        with (
            ctrl_c.installed(),
            _keys() as wait,
            Live(frame(), console=console, refresh_per_second=4) as live,
        ):
            next_at = time.monotonic() + interval
            while True:
                keys = wait(max(next_at - time.monotonic(), 0.0)) or ""
                if "q" in keys.lower():
                    return
                if time.monotonic() >= next_at:
                    live.update(frame())
                    next_at = time.monotonic() + interval
    except (KeyboardInterrupt, asyncio.CancelledError):
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
