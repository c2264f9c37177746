"""What the harness tells the user while it runs, on stderr: phase lines and a progress bar.

The bar only appears on a terminal; the phase lines always do, so a log shows what ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class Ui:
    """Phase lines and progress bars for the harness, on the given console (stderr)."""

    def __init__(self, console: Console | None = None) -> None:
        # soft_wrap: a phase line in a log stays one line, whatever the width.
        self.console = console or Console(stderr=True, soft_wrap=True)

    def note(self, text: str) -> None:
        """Print one line of what is happening."""
        self.console.print(text, markup=False, highlight=False)

    @contextmanager
    def phase(self, system: str, phase: str, total: int) -> Iterator[Callable[[], None]]:
        """Announce a phase, show a bar while it runs, and yield the function that advances it."""
        self.note(f"{system}: {phase}: {total} sagas")
        started = time.perf_counter()
        if not self.console.is_terminal:
            yield lambda: None
        else:
            bar = Progress(
                TextColumn(f"{system}: {phase}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            task = bar.add_task(phase, total=total, rate="")
            with bar:

                def advance() -> None:
                    elapsed = time.perf_counter() - started
                    done = bar.tasks[0].completed + 1
                    rate = f"{done / elapsed:.0f} sagas/s" if elapsed > 0 else ""
                    bar.update(task, advance=1, rate=rate)

                yield advance
        elapsed = time.perf_counter() - started
        self.note(f"{system}: {phase}: done in {elapsed:.2f}s")
