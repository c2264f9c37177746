"""A service that cannot start says why in one line and exits with its documented code, never
a traceback: the coordinator, an adapter, `convection adapter`, `convection participant`, as
real processes against a wrong port, a missing vhost, a missing database, bad credentials and a
URL that does not parse.

Codes (`convection.startup`): 2 bad settings, 3 schema behind, 4 database, 5 broker.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.environ import clean_environ
from tests.integration.coord_support import migrate

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

CONVECTION = str(Path(sys.executable).with_name("convection"))
PROBE = """
from contracts import vim
from convection import Participant, StepContext, handles


class Probe:
    @handles(vim.ValidateCredentials)
    async def get(self, cmd: vim.ValidateCredentials, ctx: StepContext) -> vim.CredentialsValid:
        raise AssertionError("never called")


probe = Participant("vim", handlers=[Probe()])
"""


@dataclass(frozen=True)
class Case:
    name: str
    amqp: str
    db: str
    code: int
    says: str


def _swap(url: str, *, netloc: str | None = None, path: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc or parts.netloc, path=path or parts.path))


@pytest.fixture(scope="module")
def cases(urls: tuple[str, str]) -> list[Case]:
    amqp, pg = urls
    asyncio.run(migrate(pg))
    host = urlsplit(amqp).hostname
    nobody = f"nobody_{uuid.uuid4().hex[:8]}"
    return [
        Case("db port", amqp, _swap(pg, netloc="postgres@127.0.0.1:1"), 4, "unreachable"),
        Case("db missing", amqp, _swap(pg, path="/no_such_db_zz"), 4, "no such database"),
        Case("db login", amqp, _swap(pg, netloc=f"{nobody}@127.0.0.1:5432"), 4, "login"),
        Case("db url", amqp, _swap(pg, netloc="postgres@127.0.0.1:99999"), 2, "CONVECTION_DB_URL"),
        Case("broker port", _swap(amqp, netloc="guest:guest@127.0.0.1:1"), pg, 5, "unreachable"),
        Case("vhost missing", _swap(amqp, path="/no-such-vhost-zz"), pg, 5, "NOT_ALLOWED"),
        Case("broker login", _swap(amqp, netloc=f"guest:wrong@{host}:5672"), pg, 5, "login"),
        Case("broker url", "amqp://guest:guest@[::1/", pg, 2, "CONVECTION_AMQP_URL"),
    ]


async def _run(argv: list[str], case: Case, extra: dict[str, str]) -> tuple[int, str]:
    env = clean_environ()
    env |= {
        "CONVECTION_AMQP_URL": case.amqp,
        "CONVECTION_DB_URL": case.db,
        "CONVECTION_API_PORT": "0",
        **extra,
    }
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        # A child left running would keep the interpreter from exiting after a failure.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def _check(case: Case, code: int, out: str, who: str) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == case.code, (who, case.name, out)
    assert "Traceback" not in out, (who, case.name, out)
    assert len(lines) == 1, (who, case.name, out)
    assert case.says in lines[0], (who, case.name, out)
    for secret in ("wrong@", "guest:guest@"):
        assert secret not in out, (who, case.name, out)


async def _every(argv: list[str], cases: list[Case], who: str, **extra: str) -> None:
    # Two at a time: the machine is small and each process imports the whole stack.
    gate = asyncio.Semaphore(2)

    async def one(case: Case) -> None:
        async with gate:
            code, out = await _run(argv, case, extra)
        _check(case, code, out, who)

    results = await asyncio.gather(*(one(case) for case in cases), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def test_the_coordinator(cases: list[Case]) -> None:
    await _every([sys.executable, "-m", "coordinator"], cases, "python -m coordinator")


async def test_an_adapter(cases: list[Case]) -> None:
    await _every([sys.executable, "-m", "vim_adapter"], cases, "python -m vim_adapter")


async def test_the_convection_commands(cases: list[Case], tmp_path: Path) -> None:
    (tmp_path / "startup_probe.py").write_text(PROBE)
    some = [c for c in cases if c.name in ("db missing", "vhost missing", "broker login")]
    await _every([CONVECTION, "coordinator"], some, "convection coordinator")
    await _every([CONVECTION, "adapter", "vim"], some[:2], "convection adapter vim")
    await _every(
        [CONVECTION, "participant", "startup_probe:probe"],
        some,
        "convection participant",
        PYTHONPATH=str(tmp_path),
    )
