"""The coordinator's `convection` commands: `convection coordinator` and `convection db upgrade`.

Registered through the `convection.commands` entry point, so the runtime's CLI never imports
the coordinator.
"""

from __future__ import annotations

import os

import typer

from coordinator.__main__ import load_api_settings, load_settings, run
from coordinator.store import schema
from sagas import osm_registry


def register(app: typer.Typer) -> None:
    """Add `coordinator` and the `db` group to the root `convection` app."""
    db = typer.Typer(help="Database schema of the coordinator.", no_args_is_help=True)

    @db.command("upgrade")
    def upgrade(
        db_url: str | None = typer.Option(
            None, "--db-url", help="Database URL; defaults to $CONVECTION_DB_URL."
        ),
    ) -> None:
        """Apply every migration to the database (alembic upgrade head)."""
        url = db_url or os.environ.get("CONVECTION_DB_URL")
        if not url:
            typer.echo("no database: pass --db-url or set CONVECTION_DB_URL", err=True)
            raise typer.Exit(2)
        schema.upgrade(url)
        typer.echo(f"database schema at revision {schema.head_revision()}")

    @app.command("coordinator")
    def coordinator() -> None:
        """Run a coordinator replica (configured by CONVECTION_* environment variables)."""
        settings = load_settings()
        raise typer.Exit(run(settings, osm_registry(), load_api_settings()))

    app.add_typer(db, name="db")
