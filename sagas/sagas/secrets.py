"""Which fields of a saga's input are secrets, found in the input model's JSON Schema.

A field typed `contracts.base.Secret` carries the schema mark `x-convection-secret`; the
coordinator seals the values at those paths the moment a StartSaga arrives.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from contracts.base import SECRET_MARK


def secret_paths(model: type[BaseModel]) -> tuple[tuple[str, ...], ...]:
    """Return the paths (field names, outermost first) of every secret field of `model`.

    Secrets inside lists are not supported: a path goes through objects only.
    """
    schema = model.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.get("$defs", {})
    found: list[tuple[str, ...]] = []
    _walk(schema, (), defs, found, set())
    return tuple(found)


def _walk(
    node: dict[str, Any],
    path: tuple[str, ...],
    defs: dict[str, Any],
    found: list[tuple[str, ...]],
    seen: set[str],
) -> None:
    if node.get(SECRET_MARK):
        found.append(path)
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name not in seen:  # a recursive model has no secret more than once
            _walk(defs.get(name, {}), path, defs, found, seen | {name})
        return
    for key in ("anyOf", "allOf", "oneOf"):
        for option in node.get(key, []):
            _walk(option, path, defs, found, seen)
    for field, sub in node.get("properties", {}).items():
        _walk(sub, (*path, field), defs, found, seen)
