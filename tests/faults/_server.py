"""Lifecycle shared by the private PostgreSQL cluster and the private RabbitMQ node."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Self

from tests.faults._procs import (
    as_user,
    freeze,
    group_alive,
    kill_group,
    scratch_dir,
    tail,
    thaw,
    wait_ports_closed,
)


class ServerFailed(RuntimeError):
    """A private server did not start or stop as asked; the message ends with its log."""


class PrivateServer(ABC):
    """A server process owned by one test: its own folder, ports, process group and cleanup.

    Subclasses implement `start()` and `stop(mode)`; everything else (kill, freeze, outages,
    async variants, cleanup) is common. The stop mode "kill" always means SIGKILL of the
    whole process group, as a machine crash would do it.
    """

    kind: ClassVar[str]
    os_user: ClassVar[str]

    def __init__(self) -> None:
        self.root = scratch_dir(self.kind, self.os_user)
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []
        self.frozen = False
        self._closed = False

    @abstractmethod
    def start(self) -> None:
        """Start the server and wait until it serves clients."""

    @abstractmethod
    def stop(self, mode: str = "") -> None:
        """Stop the server the way `mode` says and wait until every process is gone."""

    @property
    def ports(self) -> list[int]:
        """Ports the server listens on; a halt is complete only once they are all closed."""
        return []

    def _released(self, timeout: float) -> None:
        """Wait until a new start cannot collide with what the last run left behind."""
        wait_ports_closed(self.ports, timeout)

    @property
    def pid(self) -> int:
        """Pid of the process we spawned (leader of the server's process group)."""
        if self.process is None:
            raise ServerFailed(f"private {self.kind} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the spawned process is alive (it may still be booting or be frozen)."""
        return self.process is not None and self.process.poll() is None

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        if self.running:
            raise ServerFailed(f"private {self.kind} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} start {' '.join(argv)}\n".encode())
            log.flush()
            # Own session: the server outlives no signal we do not send, and freezing or
            # killing "the server" means its whole process group (backends, beam helpers).
            self.process = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user(self.os_user),
            )

    def _run(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> str:
        """Run a client tool as the server's OS user; return stdout, raise with its output."""
        try:
            done: subprocess.CompletedProcess[str] = subprocess.run(
                argv,
                env=None if env is None else dict(env),
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **as_user(self.os_user),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerFailed(f"{' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise ServerFailed(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def _fail(self, message: str) -> ServerFailed:
        return ServerFailed(f"private {self.kind}: {message}\n--- log:\n{tail(self.log_path)}")

    def _wait_exit(self, timeout: float) -> None:
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise self._fail(f"still running {timeout}s after being asked to stop") from exc
        # Children (backends, erl_child_setup) may outlive the leader by a moment; the next
        # start must not find them holding the data folder or the ports.
        deadline = time.monotonic() + timeout
        while group_alive(self.process.pid):
            if time.monotonic() > deadline:
                kill_group(self.process.pid)
            time.sleep(0.02)
        self._released(timeout)

    def kill(self) -> None:
        """SIGKILL every process of the server (thawing it first) and wait until they are gone."""
        self._sigkill()

    def _sigkill(self) -> None:
        self.frozen = False
        if self.process is None:
            return
        if self.process.poll() is None or group_alive(self.process.pid):
            kill_group(self.process.pid)
        self.process.wait()
        self._released(10.0)

    def halt(self, mode: str = "") -> None:
        """`kill()` if mode is "kill", else `stop(mode)` ("" means the server's default)."""
        if mode == "kill":
            self.kill()
        else:
            self.stop(mode)

    def restart(self, mode: str = "") -> None:
        """Halt (see `halt`) and start again on the same ports with the same data."""
        self.halt(mode)
        self.start()

    def ensure_running(self) -> None:
        """Start the server unless it runs; thaw it in case a test left it frozen."""
        if self.running:
            self.thaw()
        else:
            self.start()

    def freeze(self) -> None:
        """SIGSTOP the whole server: connections stay open but nothing answers."""
        freeze(self.pid, group=True)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        thaw(self.pid, group=True)
        self.frozen = False

    async def astart(self) -> None:
        """`start()` in a worker thread, so the event loop keeps running meanwhile."""
        await asyncio.to_thread(self.start)

    async def astop(self, mode: str = "") -> None:
        """`halt(mode)` in a worker thread."""
        await asyncio.to_thread(self.halt, mode)

    async def arestart(self, mode: str = "") -> None:
        """`restart(mode)` in a worker thread."""
        await asyncio.to_thread(self.restart, mode)

    async def outage(self, seconds: float, mode: str = "") -> None:
        """Halt the server, keep it down for `seconds`, start it again.

        Run it as a task (`asyncio.create_task(server.outage(5))`) to act during the outage.
        """
        await self.astop(mode)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.astart()

    @contextlib.asynccontextmanager
    async def down(self, mode: str = "") -> AsyncIterator[None]:
        """The server is halted inside the block and started again when it ends, even on error."""
        await self.astop(mode)
        try:
            yield
        finally:
            await self.astart()

    def close(self) -> None:
        """Kill the server and delete its folder; safe to call twice and after failures."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sigkill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        try:
            await self.astart()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)
