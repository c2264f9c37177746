"""`convection vim-sim`: run the VIM simulator from the convection command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `vim-sim` command to the convection command line."""

    @app.command("vim-sim")
    def vim_sim() -> None:
        """Run the VIM simulator (configured by CONVECTION_VIM_SIM_* and CONVECTION_DB_URL)."""
        from vim_sim.__main__ import main

        raise typer.Exit(main())
