"""`python -m coordinator.diagram`: print the saga state diagram that docs/states.md shows."""

from __future__ import annotations

import sys

from coordinator.core.states import mermaid

if __name__ == "__main__":
    sys.stdout.write(mermaid())
