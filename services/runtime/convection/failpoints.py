"""Named failpoints: crash a process on purpose at a chosen point, for fault tests.

`CONVECTION_FAILPOINT` names the points to arm, comma-separated; `name@N` fires the Nth
time the point is reached (default: the first). A fired failpoint logs one line and exits the
process with `os._exit(137)`, like a SIGKILL: no cleanup runs, no buffer is flushed, nothing
is acked or committed. Unset, a failpoint costs one attribute test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

logger = logging.getLogger(__name__)

EXIT_CODE = 137
"""The exit code of a fired failpoint (128 + SIGKILL, what a killed process reports)."""


class UnknownFailpoint(ValueError):
    """A failpoint name this process does not know."""


class Failpoints:
    """The armed failpoints of one process, parsed once from its settings."""

    def __init__(self, spec: str | None, known: Iterable[str]) -> None:
        self.known = frozenset(known)
        self._after: dict[str, int] = {}
        for part in (p.strip() for p in (spec or "").split(",")):
            if not part:
                continue
            name, _, count = part.partition("@")
            if name not in self.known:
                raise UnknownFailpoint(
                    f"unknown failpoint {name!r}; known: {', '.join(sorted(self.known))}"
                )
            if count and (not count.isdigit() or int(count) < 1):
                raise UnknownFailpoint(f"failpoint {part!r}: @N needs a whole number N >= 1")
            self._after[name] = int(count or 1)
        self.armed = bool(self._after)

    def hit(self, name: str) -> None:
        """Pass failpoint `name`: exit the process if it is armed and its count is reached."""
        if not self.armed or name not in self._after:
            return
        self._after[name] -= 1
        if self._after[name] > 0:
            return
        logger.critical("failpoint %s: exiting like a SIGKILL", name)
        os._exit(EXIT_CODE)

    def __contains__(self, name: object) -> bool:
        return name in self._after


NONE = Failpoints(None, ())
"""No failpoint armed."""
