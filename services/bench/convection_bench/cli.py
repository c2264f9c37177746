"""`convection bench`: the bench workload through Convection and/or the hand-written floor.

Registered through the `convection.commands` entry point. The heavy imports happen inside the
command, so every other `convection` command starts as fast as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
"""The broker the bench uses when neither --amqp-url nor CONVECTION_AMQP_URL says otherwise."""
DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The PostgreSQL server (and an existing database on it) the bench creates its databases on."""


def register(app: typer.Typer) -> None:
    """Add `bench` to the root `convection` app."""

    @app.command("bench")
    def bench(
        sagas: int = typer.Option(500, min=1, help="Sagas in the throughput phase."),
        steps: int = typer.Option(3, min=1, help="Remote no-op steps per saga."),
        concurrency: int | None = typer.Option(
            None,
            min=1,
            help="Sagas in flight in the throughput phase (default: a round's all at once).",
        ),
        rounds: int | None = typer.Option(
            None,
            min=1,
            max=100,
            help="Slices of the latency and throughput phases; the systems take turns slice "
            "by slice, so a shared machine's drift falls on all of them alike (default 4; "
            "1 with --rss-every, which follows one stretch of sagas in flight).",
        ),
        warmup: int = typer.Option(20, min=0, help="Warm-up sagas, not measured."),
        latency_sagas: int = typer.Option(
            100, min=0, help="Sagas run one after another to measure latency."
        ),
        coordinators: Annotated[
            list[int] | None,
            typer.Option(
                min=1,
                help="Coordinator processes; repeat it (`--coordinators 1 --coordinators 2`) "
                "for a Convection row per count in the same run (the floor runs the fewest "
                "orchestrators); default 1.",
            ),
        ] = None,
        participants: int = typer.Option(1, min=1, help="Echo participant processes."),
        participant_delay_ms: float = typer.Option(
            0.0,
            min=0.0,
            help="Milliseconds each echo step takes (Convection's participant only): with a "
            "slow participant, sagas pile up in flight.",
        ),
        amqp_url: str = typer.Option(
            DEFAULT_AMQP_URL,
            envvar="CONVECTION_AMQP_URL",
            help="RabbitMQ; each system gets a fresh vhost on it when possible.",
        ),
        db_url: str = typer.Option(
            DEFAULT_DB_URL,
            envvar="CONVECTION_DB_URL",
            help="PostgreSQL; each system gets a fresh database on this server.",
        ),
        floor: bool = typer.Option(
            False, "--floor/--no-floor", help="Also run the hand-written floor and compare."
        ),
        only_floor: bool = typer.Option(False, "--only-floor", help="Run the floor alone."),
        json_path: str | None = typer.Option(None, "--json", help="Write every figure here."),
        rss_every: float | None = typer.Option(
            None, min=0.1, help="Sample each process's RSS this often (seconds) while it runs."
        ),
        logs: Annotated[
            Path | None,
            typer.Option(
                file_okay=False,
                help="Keep every process's log here, in a folder per system (default: kept "
                "only when a run fails).",
            ),
        ] = None,
    ) -> None:
        """Benchmark sagas of S remote no-op steps against real RabbitMQ and PostgreSQL."""
        import asyncio
        import logging
        import sys

        from rich.console import Console

        from convection_bench.harness import Plan, run_bench
        from convection_bench.progress import Ui
        from convection_bench.report import render, write_json
        from convection_bench.resources import libpq_url, redact
        from convection_bench.signals import Stopped, until_signalled
        from convection_bench.system import (
            BenchError,
            Endpoints,
            System,
            convection_system,
            floor_system,
        )

        counts = sorted(set(coordinators or [1]))
        systems: list[System] = []
        if floor or only_floor:
            systems.append(
                floor_system(steps=steps, orchestrators=counts[0], participants=participants)
            )
        if not only_floor:
            try:
                systems.extend(
                    convection_system(
                        steps=steps,
                        coordinators=count,
                        participants=participants,
                        participant_delay_ms=participant_delay_ms,
                    )
                    for count in counts
                )
            except BenchError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        plan = Plan(
            rounds=rounds or (1 if rss_every else 4),
            sagas=sagas,
            warmup=warmup,
            latency_sagas=latency_sagas,
            concurrency=concurrency,
            rss_every=rss_every,
            logs=logs,
        )
        ui = Ui()
        if concurrency is not None and concurrency > plan.round_size:
            fewer = (
                f"; use --rounds {max(1, sagas // concurrency)} for {concurrency} at once"
                if plan.rounds > 1 and concurrency <= sagas
                else ""
            )
            ui.note(
                f"--concurrency {concurrency} is more than a round's {plan.round_size} sagas: "
                f"{plan.in_flight} in flight{fewer}"
            )
        # The libraries log connection failures themselves; BenchError says it once, with a fix.
        for noisy in ("aio_pika", "aiormq"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        try:
            base = Endpoints(amqp_url, libpq_url(db_url))
            figures = asyncio.run(until_signalled(run_bench(systems, plan, base, ui)))
        except BenchError as exc:
            typer.echo(f"bench failed: {exc}", err=True)
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, Stopped) as exc:
            why = f"stopped by {exc}" if isinstance(exc, Stopped) else "interrupted"
            typer.echo(f"{why}: processes stopped, databases and vhosts dropped", err=True)
            raise typer.Exit(128 + exc.signum if isinstance(exc, Stopped) else 130) from None
        # Off a terminal rich assumes 80 columns, too few for the cost table.
        render(figures, Console(width=None if sys.stdout.isatty() else 120))
        if json_path is not None:
            settings = {
                "sagas": sagas,
                "steps": steps,
                "concurrency": plan.in_flight,
                "rounds": plan.rounds,
                "warmup": warmup,
                "latency_sagas": latency_sagas,
                "coordinators": counts,
                "participants": participants,
                "participant_delay_ms": participant_delay_ms,
                "amqp_url": redact(amqp_url),
                "db_url": redact(db_url),
            }
            write_json(Path(json_path), figures, settings)
            ui.note(f"figures written to {json_path}")
