"""`convection --help` and `convection version` answer without the I/O stack: building the app
(every installed service's commands included) imports none of it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "aio_pika", "aiormq", "aiohttp", "asyncpg", "opentelemetry", "alembic")

PROBE = """
import io, json, sys
from contextlib import redirect_stdout
from convection.cli import build_app

app = build_app()
loaded = {}
for args in (["--help"], ["version"], ["adapter", "--help"], ["list", "--help"]):
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            app(args)
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
    loaded[" ".join(args)] = sorted(
        {m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1]))
    )
    assert out.getvalue(), args
print(json.dumps(loaded))
"""


def test_help_and_version_import_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {
        "--help": [],
        "version": [],
        "adapter --help": [],
        "list --help": [],
    }, loaded


def test_every_command_is_still_there() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convection", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    for command in (
        "start",
        "list",
        "show",
        "cancel",
        "retry",
        "abandon",
        "skip",
        "stats",
        "top",
        "coordinator",
        "sagas",
        "db",
        "adapter",
        "vim-sim",
        "bench",
        "participant",
        "demo",
    ):
        assert f" {command} " in done.stdout, command
