"""JSON Schema of every OSM saga type's input: generated into contracts/schemas/sagas/.

`python -m sagas.schemas` rewrites the files; a test fails when they drift from the models.
Other packages' saga types publish theirs through `convection sagas -o json` and
`GET /saga-types`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sagas.dsl import Registry

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "contracts" / "schemas" / "sagas"
"""Where the generated input schemas live (in the source tree)."""


def input_schemas(registry: Registry) -> dict[str, dict[str, Any]]:
    """Return file name -> input JSON Schema for every saga type and version of `registry`."""
    return {f"{saga.name}.v{saga.version}.json": saga.input_schema() for saga in registry}


def write(registry: Registry, directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the input schemas of `registry` into `directory`, removing stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = input_schemas(registry)
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, schema in wanted.items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main() -> int:
    """Regenerate the OSM saga input schemas and say how many were written."""
    from sagas import osm_registry

    paths = write(osm_registry())
    sys.stdout.write(f"wrote {len(paths)} saga input schemas to {SCHEMA_DIR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
