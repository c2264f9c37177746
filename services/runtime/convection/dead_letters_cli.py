"""`convection dead-letters`: list, show, replay and purge the dead letters a coordinator kept.

They talk to a coordinator's HTTP API like the other operator commands (CONVECTION_API_URL,
CONVECTION_API_TOKEN) and exit with the same codes (see `convection.operator_cli`): 0 done,
1 refused, 2 usage, 3 not found, 4 conflict (replayed already), 5 unreachable, 6 auth.
Times are RFC 3339 in UTC; ids are printed in full. When stdout is not a terminal, listings
are plain tab-separated lines, one dead letter each, for scripts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from convection.client import ApiError, Client

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNREACHABLE, EXIT_AUTH = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
)
"""The exit codes documented in `convection.operator_cli`."""

COLUMNS = (
    "id",
    "dead_at",
    "queue",
    "reason",
    "message_type",
    "saga_id",
    "message_id",
    "replayed_at",
)
"""The fields of a dead letter in a listing, in order (also of the tab-separated lines)."""

OutputOpt = typer.Option("text", "--output", "-o", help="text or json.")


def _client() -> Client:
    from convection.client import Client

    url = os.environ.get("CONVECTION_API_URL", "http://127.0.0.1:8080")
    return Client(url, os.environ.get("CONVECTION_API_TOKEN"))


def exit_code(exc: ApiError) -> int:
    """Return the documented exit code of an API failure."""
    from convection.client import Unreachable

    if isinstance(exc, Unreachable):
        return EXIT_UNREACHABLE
    by_status = {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT}
    return by_status.get(exc.status, EXIT_UNREACHABLE if exc.status >= 500 else EXIT_REFUSED)


def _explain(exc: ApiError) -> None:
    from convection.client import Unreachable

    hint = {
        EXIT_AUTH: "\nSet CONVECTION_API_TOKEN to a token with the right role.",
        EXIT_UNREACHABLE: "\nIs the coordinator running? Set CONVECTION_API_URL.",
    }.get(exit_code(exc), "")
    detail = exc.detail if isinstance(exc, Unreachable) else str(exc)
    typer.echo(f"error: {detail}{hint}", err=True)


def _call(fn: Callable[[Client], Coroutine[Any, Any, Any]]) -> Any:
    from convection.client import ApiError

    try:
        return asyncio.run(fn(_client()))
    except ApiError as exc:
        _explain(exc)
        raise typer.Exit(exit_code(exc)) from exc


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def stamp(value: Any) -> str:
    """Return an API time as RFC 3339 UTC to the second (`2026-12-01T20:40:00Z`), or ''."""
    if not value:
        return ""
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if name in ("dead_at", "replayed_at"):
        return stamp(value)
    return "" if value is None else str(value)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _print_items(items: list[dict[str, Any]]) -> None:
    if not sys.stdout.isatty():
        for item in items:
            # Tabs and newlines inside a field would break the lines apart.
            fields = (_cell(item, n).replace("\t", " ").replace("\n", " ") for n in COLUMNS)
            sys.stdout.write("\t".join(fields) + "\n")
        return
    table = Table(title="dead letters")
    for name in COLUMNS:
        # fold, never ellipsis: an id is only useful in full.
        table.add_column(name.replace("_", " "), overflow="fold")
    for item in items:
        table.add_row(*(_cell(item, n) for n in COLUMNS))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add `convection dead-letters` and its commands to the root command line."""
    group = typer.Typer(
        name="dead-letters",
        help="List, show, replay and purge dead letters (through the coordinator's API).",
        no_args_is_help=True,
    )
    app.add_typer(group, name="dead-letters")

    @group.command("list")
    def list_(
        queue: str | None = typer.Option(None, help="Only those that died in this queue."),
        reason: str | None = typer.Option(None, help="Only those with this reason."),
        saga_id: str | None = typer.Option(None, help="Only those of this saga."),
        replayed: bool | None = typer.Option(
            None, "--replayed/--not-replayed", help="Only replayed ones, or only the others."
        ),
        limit: int = typer.Option(50, min=1, max=500, help="Dead letters per page."),
        all_: bool = typer.Option(False, "--all", help="Every page, not only the first."),
        output: str = OutputOpt,
    ) -> None:
        """List dead letters, newest first: id, dead_at, queue, reason, type, saga, message id."""
        filters = {
            "queue": queue or "",
            "reason": reason or "",
            "saga_id": saga_id or "",
            "replayed": "" if replayed is None else str(replayed).lower(),
            "limit": str(limit),
        }

        async def pages(client: Client) -> tuple[list[dict[str, Any]], str | None]:
            items: list[dict[str, Any]] = []
            cursor = ""
            while True:
                page = await client.dead_letters(**filters, cursor=cursor)
                items += page["items"]
                cursor = page.get("next_cursor") or ""
                if not cursor or not all_:
                    return items, cursor or None

        items, more = _call(pages)
        if output == "json":
            _emit_json({"items": items, "next_cursor": more})
            return
        _print_items(items)
        if more:
            typer.echo("more dead letters: add --all, or narrow the filters", err=True)

    @group.command()
    def show(dead_letter_id: int, output: str = OutputOpt) -> None:
        """Show one dead letter: why and where it died, its headers and its body."""
        out = _call(lambda c: c.dead_letter(dead_letter_id))
        if output == "json":
            _emit_json(out)
            return
        lines = [f"{name}: {_cell(out, name)}" for name in (*COLUMNS, "replay_message_id")]
        lines += [
            f"error: {out.get('error') or ''}",
            f"collected_at: {stamp(out.get('collected_at'))}",
            f"replayed_by: {out.get('replayed_by') or ''}",
            f"replay_reason: {out.get('replay_reason') or ''}",
            f"size: {out.get('size')} bytes",
            "headers:",
            *(f"  {key}: {value}" for key, value in sorted(out.get("headers", {}).items())),
        ]
        if "body" in out:
            lines += ["body:", out["body"]]
        else:
            lines += ["body (not UTF-8, base64):", out.get("body_base64", "")]
        typer.echo("\n".join(lines))

    @group.command()
    def replay(
        dead_letter_ids: Annotated[list[int], typer.Argument(help="Ids of the dead letters.")],
        reason: str = typer.Option(..., help="Why it is replayed now (kept with the row)."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        again: bool = typer.Option(False, help="Replay dead letters replayed before, too."),
    ) -> None:
        """Publish dead letters again to the queues they died in, each with a new message id."""
        if not yes and sys.stdin.isatty():
            ids = " ".join(str(i) for i in dead_letter_ids)
            if not typer.confirm(f"Replay dead letter(s) {ids}?"):
                typer.echo("nothing replayed")
                raise typer.Exit(EXIT_REFUSED)
        from convection.client import ApiError

        failed = EXIT_OK
        for dead_letter_id in dead_letter_ids:
            try:
                out = asyncio.run(_client().replay(dead_letter_id, reason, again=again))
            except ApiError as exc:
                _explain(exc)
                failed = failed or exit_code(exc)
                continue
            typer.echo(f"replayed {dead_letter_id} as message {out['replay_message_id']}")
        raise typer.Exit(failed)

    @group.command()
    def purge(
        dead_letter_ids: Annotated[
            list[int] | None, typer.Argument(help="Ids of the dead letters.")
        ] = None,
        queue: str | None = typer.Option(None, help="Those that died in this queue."),
        reason: str | None = typer.Option(None, help="Those with this reason."),
        replayed: bool = typer.Option(False, "--replayed", help="Only those replayed already."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Confirm: the rows are deleted."),
    ) -> None:
        """Delete dead letters for good: those matching every selector given."""
        ids = list(dead_letter_ids or [])
        if not (ids or queue or reason or replayed):
            raise _usage("name what to purge: ids, --queue, --reason or --replayed")
        if not yes:
            raise _usage("purge deletes dead letters for good: add --yes")
        out = _call(
            lambda c: c.purge(ids=ids, queue=queue, reason=reason, replayed=replayed or None)
        )
        typer.echo(f"purged {out['purged']} dead letter(s)")
