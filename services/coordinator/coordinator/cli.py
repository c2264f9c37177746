"""The coordinator's `convection` commands: `coordinator`, `db upgrade`, `sagas`, `broker setup`.

Registered through the `convection.commands` entry point, so the runtime's CLI never imports
the coordinator; the commands import what they need when they run, so `convection --help`
stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add `coordinator`, `sagas` and the `db` group to the root `convection` app."""
    db = typer.Typer(help="Database schema of the coordinator.", no_args_is_help=True)

    @db.command("upgrade")
    def upgrade(
        db_url: str | None = typer.Option(
            None, "--db-url", help="Database URL; defaults to $CONVECTION_DB_URL."
        ),
    ) -> None:
        """Apply every migration to the database (alembic upgrade head)."""
        from coordinator.store import schema

        url = db_url or os.environ.get("CONVECTION_DB_URL")
        if not url:
            typer.echo("no database: pass --db-url or set CONVECTION_DB_URL", err=True)
            raise typer.Exit(2)
        schema.upgrade(url)
        typer.echo(f"database schema at revision {schema.head_revision()}")

    broker = typer.Typer(help="The RabbitMQ users and permissions.", no_args_is_help=True)

    @broker.command("setup")
    def broker_setup(
        vhost: str = typer.Option("/", help="The virtual host to grant on (created if missing)."),
        service: Annotated[
            list[str] | None,
            typer.Option(
                "--service",
                help="A participant service to create a user for (repeat); defaults to the "
                "services of the saga packages a coordinator here would run.",
            ),
        ] = None,
        apply: bool = typer.Option(
            False, "--apply", help="Run the commands here (needs rabbitmqctl) instead of printing."
        ),
        as_definitions: bool = typer.Option(
            False,
            "--definitions",
            help="Print a definitions document for the broker's load_definitions instead "
            "(passwords from CONVECTION_BROKER_PASSWORD_<ROLE>, default the user name).",
        ),
    ) -> None:
        """Print (or run) the rabbitmqctl commands that give each process its own broker user.

        One user per participant service, one for the coordinators, one for clients, each
        allowed only what it needs (docs/security.md). Passwords come from
        CONVECTION_BROKER_PASSWORD_<ROLE>, defaulting to the user name.
        """
        import subprocess

        from coordinator.broker_setup import (
            definitions,
            grants,
            password_variable,
            setup_script,
        )

        services = service or _saga_services()
        if as_definitions:
            passwords = {
                g.user: os.environ.get(password_variable(g.user), g.user) for g in grants(services)
            }
            typer.echo(
                json.dumps(definitions(services, vhost=vhost, passwords=passwords), indent=2)
            )
            return
        script = setup_script(services, vhost=vhost)
        if not apply:
            typer.echo(script, nl=False)
            return
        done = subprocess.run(["sh", "-c", script], check=False)  # noqa: S603, S607
        if done.returncode != 0:
            typer.echo(
                f"rabbitmqctl failed (exit {done.returncode}): run this as a user that may "
                "manage the node (root or rabbitmq), or print the commands and run them there",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(
            f"users for the coordinator, {', '.join(sorted(services))} and clients on {vhost}"
        )

    app.add_typer(broker, name="broker")

    @app.command("coordinator")
    def coordinator() -> None:
        """Run a coordinator replica (configured by CONVECTION_* environment variables)."""
        from coordinator.__main__ import load_api_settings, load_sagas, load_settings, run

        settings = load_settings()
        raise typer.Exit(run(settings, load_sagas(settings), load_api_settings()))

    @app.command("sagas")
    def sagas(
        selection: str | None = typer.Option(
            None,
            "--sagas",
            help="Entry-point names or module:attr, comma-separated; defaults to "
            "$CONVECTION_SAGAS (unset: every installed saga package).",
        ),
        output: str = typer.Option("text", "-o", "--output", help="text or json"),
    ) -> None:
        """List the saga types a coordinator here would run: versions, steps, locks, input.

        Exit 2, saying which package, saga, step and rule, when a package is broken.
        """
        from coordinator.catalogue import describe
        from coordinator.definitions import load_registry
        from sagas import SagaPackageError

        if output not in ("text", "json"):
            typer.echo(f"unknown output {output!r}: use text or json", err=True)
            raise typer.Exit(2)
        try:
            registry = load_registry(selection or os.environ.get("CONVECTION_SAGAS"))
        except SagaPackageError as exc:
            typer.echo(f"cannot load the saga definitions: {exc}", err=True)
            raise typer.Exit(2) from None
        types = describe(registry)
        if output == "json":
            sys.stdout.write(json.dumps({"saga_types": types}, indent=2) + "\n")
            return
        sys.stdout.write(render(types))

    app.add_typer(db, name="db")


def _saga_services() -> list[str]:
    from coordinator.definitions import load_registry
    from sagas import SagaPackageError

    try:
        return list(load_registry(os.environ.get("CONVECTION_SAGAS")).services())
    except SagaPackageError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def render(types: list[dict[str, Any]]) -> str:
    """Return the saga type catalogue as text for people."""
    lines: list[str] = []
    for t in types:
        versions = ", ".join(f"v{v['version']}" for v in t["versions"])
        lines.append(f"{t['saga_type']}  (newest v{t['latest']}; loaded {versions})")
        if t["description"]:
            lines.append(f"  {t['description']}")
        for v in t["versions"]:
            locks = v["locks"]
            held = ", ".join(f"{r['resource']} {r['mode']}" for r in locks["resources"]) or "none"
            lines.append(f"  v{v['version']}: locks {held} ({locks['policy']})")
            for step in v["steps"]:
                where = f"{step['group']}/" if step["group"] else ""
                undo = f"  undo {step['compensation']}" if step["compensation"] else ""
                name = where + step["name"]
                lines.append(f"    {name:<24} {step['kind']:<13} {step['action']}{undo}")
        lines.append("")
    return "\n".join(lines)
