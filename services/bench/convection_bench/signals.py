"""Stopping a bench cleanly on SIGINT or SIGTERM, however it was started.

A shell without job control starts a background command with SIGINT ignored, and Python then
installs no handler for it, so `kill -INT` (or Ctrl-C reaching a script's child) did nothing,
and SIGTERM killed the bench at once, leaving its processes, databases and vhosts behind.
Here both cancel the run, whose cleanup stops the processes and drops what it created.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class Stopped(Exception):
    """The bench was stopped by a signal; its cleanup has run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


async def until_signalled(run: Coroutine[Any, Any, _T]) -> _T:
    """Await `run`; SIGINT or SIGTERM cancels it (cleanup included) and raises Stopped."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None, "until_signalled runs inside a task"
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        for signum in handled:
            loop.add_signal_handler(signum, stop, signum)
        result = await run
    except asyncio.CancelledError:
        if received:
            raise Stopped(received[0]) from None
        raise
    finally:
        run.close()
        for signum in handled:
            loop.remove_signal_handler(signum)
    if received:
        # Something on the way swallowed the cancel; the signal still ends the run.
        raise Stopped(received[0])
    return result
