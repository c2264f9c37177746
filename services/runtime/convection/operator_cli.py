"""Operator commands of `convection`: start, list, show, cancel, retry, skip, stats, top.

They talk to a coordinator's HTTP API (`--api-url`, or CONVECTION_API_URL) with a bearer
token (`--token`, or CONVECTION_API_TOKEN). Every listing takes `--output json`.

Exit codes (stable; scripts may rely on them):

    0  done
    1  the API refused the request (bad input, unknown saga type)
    2  wrong usage of the command line
    3  no such saga or step
    4  not allowed in the saga's current state (e.g. cancel of a finished saga)
    5  the API is unreachable or failed
    6  missing or wrong token, or a role that may not do this
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from convection.client import ApiError, Client, Unreachable
from convection.dead_letters_cli import register as register_dead_letters

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNREACHABLE, EXIT_AUTH = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
)
"""The documented exit codes."""

_STATUS_STYLE = {
    "completed": "green",
    "compensated": "yellow",
    "cancelled": "yellow",
    "failed": "red",
    "compensation_failed": "bold red",
    "running": "cyan",
    "compensating": "magenta",
    "pending": "dim",
}

OutputOpt = typer.Option("text", "--output", "-o", help="text or json.")


def _client() -> Client:
    url = os.environ.get("CONVECTION_API_URL", "http://127.0.0.1:8080")
    return Client(url, os.environ.get("CONVECTION_API_TOKEN"))


def _call(fn: Callable[[Client], Coroutine[Any, Any, Any]]) -> Any:
    """Run one API call; turn its failure into a message and the documented exit code."""
    err = Console(stderr=True)
    try:
        return asyncio.run(fn(_client()))
    except Unreachable as exc:
        err.print(
            f"[red]error:[/] {exc.detail}\nIs the coordinator running? Set CONVECTION_API_URL."
        )
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    except ApiError as exc:
        code = {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT}.get(
            exc.status, EXIT_UNREACHABLE if exc.status >= 500 else EXIT_REFUSED
        )
        hint = {EXIT_AUTH: "\nSet CONVECTION_API_TOKEN to a token with the right role."}.get(
            code, ""
        )
        err.print(f"[red]error:[/] {exc}{hint}")
        raise typer.Exit(code) from exc


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _status(text: str) -> str:
    return f"[{_STATUS_STYLE.get(text, 'white')}]{text}[/]"


def _sagas_table(items: list[dict[str, Any]], title: str = "sagas") -> Table:
    table = Table(title=title)
    for col in ("saga id", "type", "status", "step", "created", "updated"):
        table.add_column(col)
    for s in items:
        parked = f" (parked: {s['parked']})" if s.get("parked") else ""
        version = f" v{s['version']}" if s.get("version") else ""
        table.add_row(
            s["saga_id"],
            s["saga_type"] + version,
            _status(s["status"]) + parked,
            s.get("current_step") or "",
            str(s.get("created_at", ""))[:19],
            str(s.get("updated_at", ""))[:19],
        )
    return table


def register(app: typer.Typer) -> None:
    """Add the operator commands to the root command line."""

    @app.command()
    def start(
        saga_type: str,
        input_file: str = typer.Option(..., "--input", help="JSON input file, or - for stdin."),
        saga_id: str | None = typer.Option(None, help="Choose the saga id."),
        idempotency_key: str | None = typer.Option(None, help="Same key + body = same saga."),
        output: str = OutputOpt,
    ) -> None:
        """Start a saga of SAGA_TYPE with the JSON input in --input."""
        try:
            raw = sys.stdin.read() if input_file == "-" else Path(input_file).read_text()
            data = json.loads(raw)
        except (OSError, json.JSONDecodeError) as exc:
            Console(stderr=True).print(f"[red]error:[/] cannot read the input: {exc}")
            raise typer.Exit(EXIT_USAGE) from exc
        out = _call(
            lambda c: c.start(saga_type, data, saga_id=saga_id, idempotency_key=idempotency_key)
        )
        if output == "json":
            _emit_json(out)
        else:
            typer.echo(f"started {out['saga_id']} ({saga_type}): {out['status']}")

    @app.command("list")
    def list_(
        status: str | None = typer.Option(None),
        saga_type: str | None = typer.Option(None, "--type"),
        since: str | None = typer.Option(None),
        until: str | None = typer.Option(None),
        stuck: bool = typer.Option(False, help="Only sagas with no progress past a deadline."),
        limit: int = typer.Option(50),
        output: str = OutputOpt,
    ) -> None:
        """List sagas, newest first."""
        out = _call(
            lambda c: c.list(
                status=status or "",
                saga_type=saga_type or "",
                since=since or "",
                until=until or "",
                stuck="true" if stuck else "",
                limit=str(limit),
            )
        )
        if output == "json":
            _emit_json(out)
        else:
            Console().print(_sagas_table(out["items"]))

    @app.command()
    def show(saga_id: str, output: str = OutputOpt) -> None:
        """Show one saga: steps, history, trace id (and a Jaeger link)."""
        out = _call(lambda c: c.show(saga_id))
        if output == "json":
            _emit_json(out)
            return
        console = Console()
        version = f" v{out['version']}" if out.get("version") else ""
        console.print(
            f"[bold]{out['saga_id']}[/] {out['saga_type']}{version} {_status(out['status'])}"
        )
        if out.get("parked"):
            console.print(
                f"[bold red]parked:[/] {out['parked']}: its events wait for a coordinator "
                "that has this version (start one, or roll back the upgrade)"
            )
        if out.get("error"):
            console.print(f"error: {out['error']['code']}: {out['error']['message']}")
        if out.get("waiting"):
            w = out["waiting"]
            console.print(f"waiting for {', '.join(w['resources'])} at position {w['position']}")
        console.print(f"trace id: {out.get('trace_id')}")
        jaeger = os.environ.get("CONVECTION_JAEGER_URL")
        if jaeger and out.get("trace_id"):
            console.print(f"trace: {jaeger.rstrip('/')}/trace/{out['trace_id']}")
        steps = Table(title="steps")
        for col in ("step", "status", "attempts", "started", "duration", "last error"):
            steps.add_column(col)
        for s in out["steps"]:
            dur = s.get("duration_seconds")
            err = s.get("last_error") or {}
            steps.add_row(
                s["name"],
                _status(s["status"]),
                str(s.get("attempts", 0)),
                str(s.get("started_at") or "")[11:19],
                f"{dur:.2f}s" if dur is not None else "",
                f"{err.get('code', '')} {err.get('message', '')}".strip(),
            )
        console.print(steps)
        history = Table(title="history")
        for col in ("at", "what", "step", "change", "by"):
            history.add_column(col)
        for h in out["history"]:
            change = (
                f"{h.get('from_status') or ''} -> {h.get('to_status')}"
                if h.get("to_status")
                else ""
            )
            history.add_row(
                str(h["at"])[11:23], h["kind"], h.get("step") or "", change, h.get("actor") or ""
            )
        console.print(history)

    def _verb(verb: str, saga_id: str, reason: str, step: str | None = None) -> None:
        out = _call(lambda c: c.verb(saga_id, verb, reason, step))
        typer.echo(
            f"{verb}: {out.get('saga_id', saga_id)} {out.get('status', '')} "
            f"{out.get('note', '')}".rstrip()
        )

    @app.command()
    def cancel(
        saga_id: str, reason: str = typer.Option(..., help="Recorded in the history.")
    ) -> None:
        """Cancel a saga: it compensates what it did (refused after its pivot)."""
        _verb("cancel", saga_id, reason)

    @app.command()
    def retry(
        saga_id: str, reason: str = typer.Option(..., help="Recorded in the history.")
    ) -> None:
        """Resume a failed or compensation_failed saga, reusing completed steps."""
        _verb("retry", saga_id, reason)

    @app.command()
    def skip(
        saga_id: str, step: str, reason: str = typer.Option(..., help="Recorded in the history.")
    ) -> None:
        """Mark a step's failed compensation as done by hand."""
        _verb("skip", saga_id, reason, step)

    @app.command()
    def stats(
        window: int = typer.Option(3600, help="Seconds to look back."), output: str = OutputOpt
    ) -> None:
        """Counts, success and failure rates, mean and p95 durations per saga type and step."""
        out = _call(lambda c: c.stats(window))
        if output == "json":
            _emit_json(out)
            return
        Console().print(_stats_table(out))

    @app.command()
    def top(
        interval: float = typer.Option(2.0, help="Seconds between refreshes."),
        once: bool = typer.Option(False, help="Print one frame and exit (for scripts)."),
    ) -> None:
        """A live view of running sagas and recent failures, refreshed in place."""

        def frame() -> Group:
            running = _call(lambda c: c.list(status="running", limit="20"))["items"]
            pending = _call(lambda c: c.list(status="pending", limit="10"))["items"]
            comp = _call(lambda c: c.list(status="compensating", limit="10"))["items"]
            failed = _call(
                lambda c: c.list(status="failed,compensation_failed,compensated", limit="10")
            )["items"]
            stamp = time.strftime("%H:%M:%S")
            return Group(
                _sagas_table(running + comp + pending, f"in flight at {stamp}"),
                _sagas_table(failed, "recent failures"),
            )

        console = Console()
        if once:
            console.print(frame())
            return
        with Live(frame(), console=console, refresh_per_second=4, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    live.update(frame())
            except KeyboardInterrupt:
                return

    register_dead_letters(app)


def _stats_table(out: dict[str, Any]) -> Table:
    table = Table(title=f"last {out['window_seconds']}s")
    for col in ("saga type / step", "count", "success", "failure", "mean", "p95"):
        table.add_column(col)

    def row(name: str, s: dict[str, Any]) -> None:
        def secs(v: float | None) -> str:
            return f"{v:.2f}s" if v is not None else ""

        table.add_row(
            name,
            str(s["count"]),
            f"{s['success_rate']:.0%}",
            f"{s['failure_rate']:.0%}",
            secs(s.get("mean_seconds")),
            secs(s.get("p95_seconds")),
        )

    for t in out["saga_types"]:
        row(f"[bold]{t['saga_type']}[/]", t)
        for s in t["steps"]:
            row(f"  {s['step']}", s)
    return table
