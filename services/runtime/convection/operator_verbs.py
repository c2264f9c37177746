"""`convection cancel|retry|abandon|skip`: one saga by id, or every saga a query matches.

`cancel|retry|abandon --query FILTERS --reason TEXT` (FILTERS as in `convection.saga_query`)
counts the matching sagas over every page, asks for confirmation (unless `--yes`; without a
terminal on stdin it refuses, exit 2, rather than act unasked), runs the verb on each with a
progress bar on stderr (on a terminal), and prints a summary: done, refused (with the
reasons), not found. Exit 0 when every one was done, 4 when some were refused, 3 when some
were not found (and none refused).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from convection import cli_common as common
from convection.cli_output import print_lines
from convection.saga_query import BadFilter, parse_query

if TYPE_CHECKING:
    from convection.client import Client

_REASON = typer.Option(..., "--reason", help="Why: recorded in the history.")
_QUERY = typer.Option(
    None, "--query", help='Every saga matching FILTERS, e.g. "status=failed,type=ns.instantiate".'
)
_YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (a batch).")
_CONCURRENCY = 8
"""Verbs in flight at once in a batch: quick, without flooding one coordinator."""


@dataclass
class Summary:
    """What a batch came to, saga by saga."""

    matched: int
    done: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """0 when every saga was done, 4 when some were refused, 3 when some were missing."""
        if self.refused:
            return common.EXIT_CONFLICT
        if self.not_found:
            return common.EXIT_NOT_FOUND
        return common.EXIT_OK

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON: counts and ids, with each refusal's reason."""
        return {
            "matched": self.matched,
            "done": self.done,
            "refused": [{"saga_id": k, "reason": v} for k, v in self.refused.items()],
            "not_found": self.not_found,
        }

    def lines(self, verb: str) -> list[str]:
        """The summary for people: counts, then the reasons of the refusals."""
        out = [
            f"{verb}: {len(self.done)} done, {len(self.refused)} refused, "
            f"{len(self.not_found)} not found (of {self.matched})"
        ]
        for reason, n in Counter(self.refused.values()).most_common():
            out.append(f"  refused ({n}): {reason}")
        out += [f"  not found: {saga_id}" for saga_id in self.not_found]
        return out


def _one(verb: str, saga_id: str, reason: str, output: str, step: str | None = None) -> None:
    out = common.call(lambda c: c.verb(saga_id, verb, reason, step))
    if output == "json":
        common.emit_json(out)
        return
    print_lines(
        f"{verb}: {out.get('saga_id', saga_id)} {out.get('status', '')} "
        f"{out.get('note', '')}".rstrip()
    )


def _matching(query: str) -> list[str]:
    try:
        params = parse_query(query)
    except BadFilter as exc:
        common.fail(common.EXIT_USAGE, f"--query: {exc}")
    items = common.call(lambda c: c.list_all(params), bad_request=common.EXIT_USAGE)
    return [str(s["saga_id"]) for s in items]


def _confirm(verb: str, ids: list[str], yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        common.fail(
            common.EXIT_USAGE,
            f"{verb} of {len(ids)} sagas needs confirmation and stdin is not a terminal: "
            "check the list with `convection list` and the same filters, then pass --yes",
        )
    if not typer.confirm(f"{verb} these {len(ids)} sagas?", default=False):
        sys.stderr.write("nothing done\n")
        raise typer.Exit(common.EXIT_OK)


async def _run_batch(
    client: Client, verb: str, ids: list[str], reason: str, tick: Callable[[], None]
) -> Summary:
    from convection.client import ApiError

    summary = Summary(matched=len(ids))
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(saga_id: str) -> None:
        async with gate:
            try:
                await client.verb(saga_id, verb, reason)
                summary.done.append(saga_id)
            except ApiError as exc:
                if exc.status == 404:
                    summary.not_found.append(saga_id)
                elif exc.status == 409:
                    summary.refused[saga_id] = exc.detail or exc.title
                else:
                    raise
            finally:
                tick()

    await asyncio.gather(*(one(saga_id) for saga_id in ids))
    return summary


def _batch(verb: str, query: str, reason: str, yes: bool, output: str) -> None:
    ids = _matching(query)
    if output != "json":
        sys.stderr.write(f"{len(ids)} sagas match {query!r}\n")
    if not ids:
        if output == "json":
            common.emit_json(Summary(matched=0).as_json())
        raise typer.Exit(common.EXIT_OK)
    _confirm(verb, ids, yes)
    from convection.client import ApiError

    try:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True)) as bar:
                task = bar.add_task(verb, total=len(ids))
                summary = asyncio.run(
                    _run_batch(common.client(), verb, ids, reason, lambda: bar.advance(task))
                )
        else:
            summary = asyncio.run(_run_batch(common.client(), verb, ids, reason, lambda: None))
    except ApiError as exc:
        code, message = common.explain(exc)
        common.fail(code, f"the batch stopped: {message}")
    if output == "json":
        common.emit_json(summary.as_json())
    else:
        print_lines(*summary.lines(verb))
    raise typer.Exit(summary.exit_code())


def _verb_or_batch(
    verb: str, saga_id: str | None, query: str | None, reason: str, yes: bool, output: str
) -> None:
    common.check_output(output)
    if (saga_id is None) == (query is None):
        common.fail(common.EXIT_USAGE, f"{verb} takes a saga id or --query FILTERS (one of them)")
    if query is not None:
        _batch(verb, query, reason, yes, output)
    else:
        assert saga_id is not None
        _one(verb, saga_id, reason, output)


def register(app: typer.Typer) -> None:
    """Add cancel, retry, abandon and skip to the root command line."""

    @app.command()
    def cancel(
        saga_id: str | None = typer.Argument(None, help="The saga (or use --query)."),
        reason: str = _REASON,
        query: str | None = _QUERY,
        yes: bool = _YES,
        output: str = common.OutputOpt,
    ) -> None:
        """Cancel a saga: it compensates what it did (refused after its pivot)."""
        _verb_or_batch("cancel", saga_id, query, reason, yes, output)

    @app.command()
    def retry(
        saga_id: str | None = typer.Argument(None, help="The saga (or use --query)."),
        reason: str = _REASON,
        query: str | None = _QUERY,
        yes: bool = _YES,
        output: str = common.OutputOpt,
    ) -> None:
        """Resume a failed or compensation_failed saga, reusing completed steps."""
        _verb_or_batch("retry", saga_id, query, reason, yes, output)

    @app.command()
    def abandon(
        saga_id: str | None = typer.Argument(None, help="The saga (or use --query)."),
        reason: str = _REASON,
        query: str | None = _QUERY,
        yes: bool = _YES,
        output: str = common.OutputOpt,
    ) -> None:
        """Give a saga up for good: it ends abandoned, compensating nothing more."""
        _verb_or_batch("abandon", saga_id, query, reason, yes, output)

    @app.command()
    def skip(
        saga_id: str,
        step: str,
        reason: str = _REASON,
        output: str = common.OutputOpt,
    ) -> None:
        """Mark a step's failed compensation as done by hand."""
        common.check_output(output)
        _one("skip", saga_id, reason, output, step)
