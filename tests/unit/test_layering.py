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
# The engine is pure too: it may not import anything that does I/O, nor read the clock.
ENGINE_MODULES = ("engine.py", "states.py", "locks.py")
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
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
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


def test_engine_does_no_io() -> None:
    coordinator = PACKAGES["coordinator"]
    for name in ENGINE_MODULES:
        path = coordinator / name
        if not path.exists():
            continue
        bad = _imports(path) & IO_MODULES
        assert not bad, f"{name} imports {bad}: the engine must stay pure"
        text = path.read_text()
        for call in ("datetime.now", "utcnow(", "time.time", "utc_now("):
            assert call not in text, f"{name} reads the clock ({call})"


def test_every_member_is_a_real_package() -> None:
    for package, folder in PACKAGES.items():
        assert (folder / "__init__.py").is_file(), f"{package} has no __init__.py"
