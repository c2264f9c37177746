"""Deterministic message ids: a replay of a decision, or another replica, computes the same."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1e6c34-6c1b-4d7e-9a55-3c0f0c8e2a11")


def message_id(*parts: object) -> str:
    """Return the id derived from `parts` (joined by `/`), as 32 hex digits."""
    return uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)).hex
