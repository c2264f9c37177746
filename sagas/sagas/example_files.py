"""Where the example inputs are: in the source tree (sagas/examples) or in the installed wheel."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def directory() -> Path:
    """Return the folder holding one example input (JSON) per saga type."""
    for candidate in (_HERE / "examples", _HERE.parent / "examples"):
        if (candidate / "vim-account-create.json").is_file():
            return candidate
    raise FileNotFoundError(f"no example inputs next to {_HERE}: reinstall convection-sagas")
