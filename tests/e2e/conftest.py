"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.stack import Venv, build_venv


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    built = build_venv(tmp_path_factory.mktemp("fresh-venv"))
    # Installed copies, not the project's sources (no editable paths, no PYTHONPATH).
    where = subprocess.run(
        [
            built.python,
            "-c",
            "import coordinator, order_saga, sagas; print(coordinator.__file__,"
            " order_saga.__file__, sagas.__file__)",
        ],
        cwd=tmp_path_factory.getbasetemp(),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(built.root) in path and "site-packages" in path for path in where), where
    return built
