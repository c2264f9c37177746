"""Named child processes a fault test can crash, freeze and restart; see `tests.faults.private`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.faults._procs import freeze, group_alive, kill_group, scratch_dir, tail, thaw


class Service:
    """One child process of a `ProcessGroup`, restartable with the same command and env."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        """The process id of the current run."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the current run has not exited yet."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run (negative: killed by that signal), None if running."""
        return None if self.process is None else self.process.poll()

    def start(self) -> None:
        """Start the process, appending its output to `log_path`."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            # A session of its own: signals go to the service and its children only, and a
            # Ctrl-C in the terminal does not reach it before the test decides.
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> int | None:
        """SIGKILL the service and every child it spawned; return the exit status."""
        if self.process is None:
            return None
        # Also when the leader is gone already: children it left behind share its group.
        if self.process.poll() is None or group_alive(self.process.pid):
            kill_group(self.process.pid)
        return self.process.wait()

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if the service is still alive after `timeout` seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        return self.kill()

    def restart(self, *, hard: bool = False, timeout: float = 10.0) -> None:
        """Stop (SIGKILL if hard, else SIGTERM) and start again with the same command and env."""
        if hard:
            self.kill()
        else:
            self.terminate(timeout)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the service and its children."""
        freeze(self.pid, group=True)

    def thaw(self) -> None:
        """SIGCONT the service and its children."""
        thaw(self.pid, group=True)

    def log_text(self) -> str:
        """Everything the service wrote so far, over all its runs."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, text: str, within: float = 30.0) -> None:
        """Wait until `text` appears in the log of the current run; fail early if it exits."""
        deadline = time.monotonic() + within
        marker = f"--- start {self.starts}:"

        def seen() -> bool:
            return text in self.log_text().rsplit(marker, 1)[-1]

        while not seen():
            if not self.running and not seen():
                raise RuntimeError(
                    f"{self.name} exited ({self.returncode}) before {text!r}:\n"
                    + tail(self.log_path)
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: no {text!r} after {within}s:\n" + tail(self.log_path)
                )
            await asyncio.sleep(0.05)

    async def wait_exit(self, within: float = 30.0) -> int:
        """Wait until the current run exits; return its exit status."""
        deadline = time.monotonic() + within
        while (code := self.returncode) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} still running after {within}s")
            await asyncio.sleep(0.05)
        return code


class ProcessGroup:
    """Named child processes (typically `python -m service`) that a test can crash at will.

    Everything still running is killed on `close()` / when the `with` block ends.
    """

    def __init__(self, log_dir: Path | None = None, base_env: Mapping[str, str] | None = None):
        self._own_dir = log_dir is None
        self.log_dir = log_dir if log_dir is not None else scratch_dir("procs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.services: dict[str, Service] = {}

    def spawn_argv(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        """Start any command as service `name`; env entries override the group's base env."""
        if name in self.services:
            raise ValueError(f"a service named {name!r} exists already")
        # Python children must not sit on buffered output when they are SIGKILLed: the log is
        # how a failing fault test explains itself.
        merged = {**self.base_env, "PYTHONUNBUFFERED": "1", **(env or {})}
        service = Service(name, argv, merged, self.log_dir / f"{name}.log", cwd or Path.cwd())
        self.services[name] = service
        service.start()
        return service

    def spawn(
        self,
        name: str,
        module: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        """Start `sys.executable -m module *args` as service `name`."""
        return self.spawn_argv(name, [sys.executable, "-m", module, *args], env=env, cwd=cwd)

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self.services.values()))

    def kill(self, name: str) -> int | None:
        """SIGKILL service `name` (and its children)."""
        return self.services[name].kill()

    def terminate(self, name: str, timeout: float = 10.0) -> int | None:
        """SIGTERM service `name`, SIGKILL after timeout."""
        return self.services[name].terminate(timeout)

    def restart(self, name: str, *, hard: bool = False) -> None:
        """Stop service `name` (SIGKILL if hard) and start it again."""
        self.services[name].restart(hard=hard)

    def freeze(self, name: str) -> None:
        """SIGSTOP service `name`."""
        self.services[name].freeze()

    def thaw(self, name: str) -> None:
        """SIGCONT service `name`."""
        self.services[name].thaw()

    def logs(self, lines: int = 40) -> str:
        """The tail of every service's log, for a failing test's message."""
        return "\n".join(f"=== {s.name}\n{tail(s.log_path, lines)}" for s in self)

    def close(self, timeout: float = 5.0) -> None:
        """Terminate every service still running (SIGKILL after timeout)."""
        for service in self:
            with contextlib.suppress(Exception):
                service.terminate(timeout)
        if self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
