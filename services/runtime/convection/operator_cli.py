"""Operator commands of `convection`: start, list, show, stats; verbs and top in their modules.

They talk to a coordinator's HTTP API (CONVECTION_API_URL) with a bearer token
(CONVECTION_API_TOKEN). Every command takes `-o json`; text output is a rich table on a
terminal and tab-separated lines otherwise (`convection.cli_output`). The exit codes are
listed in `convection.cli_common`. Nothing heavy is imported until a command runs, so
`convection --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from convection import cli_common as common
from convection import operator_top, operator_verbs
from convection.cli_output import Table, print_lines, print_tables
from convection.dead_letters_cli import register as register_dead_letters
from convection.saga_query import BadFilter, filters

_INPUTS = typer.Option([], "--input", help="FIELD=VALUE of the input (dotted paths; repeatable).")
_SAGA_COLUMNS = ("saga_id", "type", "version", "status", "step", "created", "updated")


def saga_rows(items: list[dict[str, Any]]) -> list[Sequence[str]]:
    """Return the table rows of saga summaries (`_SAGA_COLUMNS`)."""
    rows: list[Sequence[str]] = []
    for s in items:
        parked = f" (parked: {s['parked']})" if s.get("parked") else ""
        rows.append(
            [
                s["saga_id"],
                s["saga_type"],
                str(s.get("version") or ""),
                s["status"] + parked,
                s.get("current_step") or "",
                s.get("created_at") or "",
                s.get("updated_at") or "",
            ]
        )
    return rows


def register(app: typer.Typer) -> None:
    """Add the operator commands to the root command line."""

    @app.command()
    def start(
        saga_type: str,
        input_file: str = typer.Option(..., "--input", help="JSON input file, or - for stdin."),
        saga_id: str | None = typer.Option(None, help="Choose the saga id."),
        idempotency_key: str | None = typer.Option(None, help="Same key + body = same saga."),
        wait: bool = typer.Option(
            False, help="Wait until the saga ends; the exit code says how (0, 7-11; 12)."
        ),
        timeout: float | None = typer.Option(
            None, min=0, help="With --wait: give up after this many seconds (exit 12)."
        ),
        output: str = common.OutputOpt,
    ) -> None:
        """Start a saga of SAGA_TYPE with the JSON input in --input."""
        common.check_output(output)
        try:
            raw = sys.stdin.read() if input_file == "-" else Path(input_file).read_text()
            data = json.loads(raw)
        except (OSError, json.JSONDecodeError) as exc:
            common.fail(common.EXIT_USAGE, f"cannot read the input: {exc}")
        if not wait:
            out = common.call(
                lambda c: c.start(saga_type, data, saga_id=saga_id, idempotency_key=idempotency_key)
            )
            if output == "json":
                common.emit_json(out)
            else:
                print_lines(f"started {out['saga_id']} ({saga_type}): {out['status']}")
            return
        from convection.operator_wait import start_and_wait

        raise typer.Exit(start_and_wait(saga_type, data, saga_id, idempotency_key, timeout, output))

    @app.command("list")
    def list_(
        status: str | None = typer.Option(None, help="Comma list of statuses."),
        saga_type: str | None = typer.Option(None, "--type", help="A saga type."),
        stuck: bool | None = typer.Option(
            None, "--stuck/--not-stuck", help="Only sagas stuck (or only those not stuck)."
        ),
        resource: str | None = typer.Option(None, help="A locked resource, e.g. ns:ns-web-1."),
        inputs: list[str] = _INPUTS,
        error_code: str | None = typer.Option(None, help="The code of the saga's error."),
        started_after: str | None = typer.Option(
            None, "--started-after", "--since", help="Created at or after (RFC 3339)."
        ),
        started_before: str | None = typer.Option(
            None, "--started-before", "--until", help="Created before (RFC 3339)."
        ),
        limit: int = typer.Option(50, min=1, max=500, help="Sagas per page."),
        every: bool = typer.Option(False, "--all", help="Every page, not only the first."),
        output: str = common.OutputOpt,
    ) -> None:
        """List sagas, newest first (filters combine; a bad one exits 2 naming it)."""
        common.check_output(output)
        try:
            params = filters(
                status=status,
                saga_type=saga_type,
                stuck=stuck,
                resource=resource,
                inputs=inputs,
                error_code=error_code,
                started_after=started_after,
                started_before=started_before,
            )
        except BadFilter as exc:
            common.fail(common.EXIT_USAGE, str(exc))
        bad = common.EXIT_USAGE
        if every:
            items = common.call(lambda c: c.list_all(params, page=limit), bad_request=bad)
            out: dict[str, Any] = {"items": items, "next_cursor": None}
        else:
            out = common.call(lambda c: c.list({**params, "limit": str(limit)}), bad_request=bad)
        if output == "json":
            common.emit_json(out)
            return
        print_tables(Table("sagas", _SAGA_COLUMNS, saga_rows(out["items"])), titled=False)
        if out.get("next_cursor") and sys.stdout.isatty():
            sys.stderr.write("more sagas match: --all lists every page\n")

    @app.command()
    def show(saga_id: str, output: str = common.OutputOpt) -> None:
        """Show one saga: steps, history, trace id (and a Jaeger link)."""
        common.check_output(output)
        out = common.call(lambda c: c.show(saga_id))
        if output == "json":
            common.emit_json(out)
            return
        _print_saga(out)

    @app.command()
    def stats(
        window: int = typer.Option(3600, min=1, help="Seconds to look back."),
        output: str = common.OutputOpt,
    ) -> None:
        """Per saga type and step: counts by outcome, rates, mean and p95 durations."""
        common.check_output(output)
        out = common.call(lambda c: c.stats(window))
        if output == "json":
            common.emit_json(out)
            return
        print_tables(_stats_table(out), titled=False)

    operator_verbs.register(app)
    operator_top.register(app)
    register_dead_letters(app)


def _print_saga(out: dict[str, Any]) -> None:
    version = f" v{out['version']}" if out.get("version") else ""
    lines = [f"{out['saga_id']} {out['saga_type']}{version} {out['status']}"]
    if out.get("parked"):
        lines.append(
            f"parked: {out['parked']}: its events wait for a coordinator that has this version "
            "(start one, or roll back the upgrade)"
        )
    if out.get("error"):
        lines.append(f"error: {out['error']['code']}: {out['error']['message']}")
    if out.get("waiting"):
        w = out["waiting"]
        lines.append(f"waiting for {', '.join(w['resources'])} at position {w['position']}")
    lines.append(f"created: {out.get('created_at')}  updated: {out.get('updated_at')}")
    lines.append(f"trace id: {out.get('trace_id')}")
    jaeger = os.environ.get("CONVECTION_JAEGER_URL")
    if jaeger and out.get("trace_id"):
        lines.append(f"trace: {jaeger.rstrip('/')}/trace/{out['trace_id']}")
    print_lines(*lines)
    steps = Table(
        "steps",
        ("step", "status", "attempts", "started", "finished", "duration", "last error"),
        statuses=frozenset({1}),
    )
    for s in out["steps"]:
        dur = s.get("duration_seconds")
        err = s.get("last_error") or {}
        steps.rows.append(
            [
                s["name"],
                s["status"],
                str(s.get("attempts", 0)),
                s.get("started_at") or "",
                s.get("finished_at") or "",
                f"{dur:.2f}s" if dur is not None else "",
                f"{err.get('code', '')}: {err.get('message', '')}" if err else "",
            ]
        )
    history = Table("history", ("at", "what", "step", "change", "by"), ids=frozenset({2}))
    for h in out["history"]:
        change = f"{h.get('from_status') or ''} -> {h['to_status']}" if h.get("to_status") else ""
        history.rows.append([h["at"], h["kind"], h.get("step") or "", change, h.get("actor") or ""])
    print_tables(steps, history)


def _stats_table(out: dict[str, Any]) -> Table:
    table = Table(
        f"last {out['window_seconds']}s",
        (
            "saga_type",
            "step",
            "count",
            "finished",
            "completed",
            "cancelled",
            "success",
            "failure",
            "cancelled_rate",
            "mean",
            "p95",
        ),
        ids=frozenset({0, 1}),
    )

    def secs(v: float | None) -> str:
        return f"{v:.2f}s" if v is not None else ""

    def row(saga_type: str, step: str, s: dict[str, Any], ok: str) -> None:
        outcomes = s.get("outcomes", {})
        table.rows.append(
            [
                saga_type,
                step,
                str(s["count"]),
                str(s["finished"]),
                str(outcomes.get(ok, 0)),
                str(outcomes.get("cancelled", 0)),
                f"{s['success_rate']:.0%}",
                f"{s['failure_rate']:.0%}",
                f"{s.get('cancelled_rate', 0.0):.0%}",
                secs(s.get("mean_seconds")),
                secs(s.get("p95_seconds")),
            ]
        )

    for t in out["saga_types"]:
        row(t["saga_type"], "", t, "completed")
        for s in t["steps"]:
            row(t["saga_type"], s["step"], s, "succeeded")
    return table
