"""JSON Schema of every message and payload: generated into contracts/schemas/, checked in.

`python -m contracts.schemas` rewrites the files; a test fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts import lcm, ro, vim
from contracts.messages import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
"""Where the generated schema files live (contracts/schemas/ in the source tree)."""


def all_schemas() -> dict[str, dict[str, Any]]:
    """Return file name -> JSON Schema for every message, action payload and result."""
    out: dict[str, dict[str, Any]] = {}
    for kind, model in MESSAGE_TYPES.items():
        out[f"message.{kind}.json"] = _schema(model)
    for module in (vim, ro, lcm):
        for action in module.ACTIONS:
            out[f"action.{action.ACTION}.json"] = _schema(action)
            out[f"result.{action.ACTION}.json"] = _schema(action.RESULT)
    return out


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(schema: dict[str, Any]) -> str:
    """Render one schema exactly as it is written to disk."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into `directory`, removing stale ones; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = all_schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, schema in wanted.items():
        path = directory / name
        path.write_text(render(schema))
        written.append(path)
    return written


def main() -> int:
    """Regenerate the schema files and say how many were written."""
    paths = write()
    sys.stdout.write(f"wrote {len(paths)} schemas to {SCHEMA_DIR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
