"""How the operator commands print: rich tables on a terminal, tab-separated lines in pipes.

When stdout is not a terminal every table is a header line and one line per row, cells
separated by tabs and printed whole (ids in full: `cut -f1` gives them back), and a command
that prints several tables puts a `# title` line before each. On a terminal the tables are
rich's, but an id column is never truncated nor wrapped: the other columns give way.
Timestamps are printed as the API gives them (RFC 3339 UTC, `convection.timefmt`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table as RichTable

STATUS_STYLE = {
    "completed": "green",
    "compensated": "yellow",
    "cancelled": "yellow",
    "abandoned": "bold yellow",
    "failed": "red",
    "compensation_failed": "bold red",
    "running": "cyan",
    "compensating": "magenta",
    "pending": "dim",
    "succeeded": "green",
}
"""The colour of each saga (and step) status on a terminal."""


@dataclass
class Table:
    """A table to print: its title, column names, rows of text, which columns hold ids."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    ids: frozenset[int] = frozenset({0})
    """Indexes of the columns that hold ids: never truncated, never wrapped."""
    statuses: frozenset[int] = frozenset()
    """Indexes of the columns that hold a status, coloured on a terminal."""


def terminal() -> bool:
    """Tell whether stdout is a terminal (rich tables) or a pipe or file (plain lines)."""
    return sys.stdout.isatty()


def cell(value: Any) -> str:
    """Return a value as one cell of text: None is empty, no tab or newline inside."""
    if value is None:
        return ""
    return " ".join(str(value).replace("\t", " ").splitlines())


def plain(tables: Sequence[Table], *, titled: bool) -> str:
    """Return tables as tab-separated lines, each after a `# title` line when `titled`."""
    lines: list[str] = []
    for table in tables:
        if titled:
            lines.append(f"# {table.title}")
        lines.append("\t".join(table.columns))
        lines += ["\t".join(cell(v) for v in row) for row in table.rows]
    return "\n".join(lines) + "\n"


def rich_table(table: Table) -> RichTable:
    """Return the rich table of `table`: id columns as wide as their longest id."""
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(title=table.title)
    for i, name in enumerate(table.columns):
        if i in table.ids:
            widest = max([len(name), *(len(cell(r[i])) for r in table.rows)])
            out.add_column(name, no_wrap=True, overflow="fold", min_width=widest)
        else:
            out.add_column(name, overflow="fold")
    for row in table.rows:
        out.add_row(
            *(
                Text(cell(v), style=STATUS_STYLE.get(cell(v), "") if i in table.statuses else "")
                for i, v in enumerate(row)
            )
        )
    return out


def print_tables(*tables: Table, titled: bool = True) -> None:
    """Print tables: rich on a terminal, else plain lines (titled when there are several)."""
    if not terminal():
        sys.stdout.write(plain(tables, titled=titled))
        return
    from rich.console import Console

    console = Console()
    for table in tables:
        console.print(rich_table(table))


def print_lines(*lines: str) -> None:
    """Print lines of text as they are (no markup)."""
    sys.stdout.write("".join(line + "\n" for line in lines))
