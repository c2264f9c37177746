"""The one-way dependencies of DESIGN.md, checked on the imports of every module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "contracts": ROOT / "contracts" / "contracts",
    "sagas": ROOT / "sagas" / "sagas",
    "convection": ROOT / "services" / "runtime" / "convection",
    "coordinator": ROOT / "services" / "coordinator" / "coordinator",
    "vim_adapter": ROOT / "services" / "vim-adapter" / "vim_adapter",
    "ro_adapter": ROOT / "services" / "ro-adapter" / "ro_adapter",
    "lcm_adapter": ROOT / "services" / "lcm-adapter" / "lcm_adapter",
    "vim_sim": ROOT / "services" / "vim-sim" / "vim_sim",
}
OURS = set(PACKAGES)
ALLOWED = {
    "contracts": set(),
    "sagas": {"contracts"},
    "convection": {"contracts"},
    "coordinator": {"contracts", "sagas", "convection"},
    "vim_adapter": {"contracts", "convection"},
    "ro_adapter": {"contracts", "convection"},
    "lcm_adapter": {"contracts", "convection"},
    "vim_sim": {"convection"},
}
# The pure layers may use only the standard library and pydantic: no I/O library at all.
PURE_THIRD_PARTY = {"pydantic", "pydantic_core", "typing_extensions"}
PURE = {"contracts", "sagas"}
# The coordinator's core is pure too, as a whole folder: no I/O, no clock, no environment.
CORE = PACKAGES["coordinator"] / "core"
# What the core may import from the coordinator outside itself: its pure error tree.
CORE_MAY_IMPORT = {"coordinator.errors"}
IO_MODULES = {
    "asyncio",
    "socket",
    "sqlalchemy",
    "aio_pika",
    "aiohttp",
    "asyncpg",
    "aiosqlite",
    "subprocess",
    "os",
    "time",
    "random",
    "threading",
    "convection",
    "logging",
    "sys",
    "signal",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "multiprocessing",
    "concurrent",
    "http",
    "urllib",
    "ssl",
    "select",
    "selectors",
    "importlib",
    "sqlite3",
    "opentelemetry",
    "prometheus_client",
    "tenacity",
    "alembic",
    "pydantic_settings",
}
# Calls that read the clock, the environment, randomness or files, by their last name.
IMPURE_CALLS = {
    "now",
    "utcnow",
    "today",
    "time",
    "monotonic",
    "perf_counter",
    "utc_now",
    "getenv",
    "open",
    "uuid1",
    "uuid4",
    "urandom",
    "random",
}


def _impure_uses(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in IMPURE_CALLS:
                found.add(f"{name}()")
        elif (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ"
        ):
            found.add("environ")
    return found


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _full_imports(path)}


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_dependencies_point_one_way(package: str) -> None:
    bad = []
    for path in PACKAGES[package].rglob("*.py"):
        imported = _imports(path)
        for name in imported & OURS - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
        if package in PURE:
            stdlib = sys.stdlib_module_names
            for name in imported - OURS - PURE_THIRD_PARTY - set(stdlib) - {"__future__"}:
                bad.append(f"{path.relative_to(ROOT)} imports third-party {name} (pure layer)")
            for name in imported & {"asyncio", "socket", "subprocess", "os", "time", "threading"}:
                bad.append(f"{path.relative_to(ROOT)} imports {name} (pure layer does no I/O)")
    assert not bad, "\n".join(bad)


def core_impurities(core: Path = CORE) -> list[str]:
    """Return every import of I/O or of the shell, and every clock or environment read."""
    bad = []
    for path in sorted(core.rglob("*.py")):
        name = path.relative_to(core.parent)
        for module in sorted(_full_imports(path)):
            top = module.split(".")[0]
            if top in IO_MODULES:
                bad.append(f"{name} imports {module} (the core does no I/O)")
            elif top == "coordinator" and not (
                module.startswith("coordinator.core") or module in CORE_MAY_IMPORT
            ):
                bad.append(f"{name} imports {module} (the core does not reach into the shell)")
        uses = sorted(_impure_uses(path))
        bad.extend(f"{name} reads the clock or the environment ({u})" for u in uses)
    return bad


def test_the_core_folder_is_pure() -> None:
    assert CORE.is_dir()
    bad = core_impurities()
    assert not bad, "\n".join(bad)


def test_the_purity_check_catches_an_impure_core_module(tmp_path: Path) -> None:
    core = tmp_path / "core"
    core.mkdir()
    (core / "good.py").write_text("from contracts import Reply\nfrom coordinator.errors import X\n")
    assert core_impurities(core) == []
    (core / "bad.py").write_text(
        "import sqlalchemy\nfrom coordinator.store import Store\n"
        "import os\nx = os.environ\nfrom datetime import datetime\ny = datetime.now()\n"
    )
    found = "\n".join(core_impurities(core))
    for needle in ("sqlalchemy", "coordinator.store", "imports os", "(environ)", "(now())"):
        assert needle in found


def test_core_modules_stay_small() -> None:
    for path in CORE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 300, f"{path.relative_to(ROOT)} has {lines} lines (the core keeps <= 300)"


def test_every_member_is_a_real_package() -> None:
    for package, folder in PACKAGES.items():
        assert (folder / "__init__.py").is_file(), f"{package} has no __init__.py"
