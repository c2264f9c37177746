"""Process and port helpers for fault tests; see `tests.faults.private` for the design."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Random ports come from below the kernel's ephemeral range (32768-60999 here): an outgoing
# connection elsewhere on the machine can then never steal a port we hand out, even while a
# private server is down between a stop and a start and the port is briefly unbound.
_PORT_RANGE = (20000, 32000)
# 25672 is the shared node's distribution port; keep clear of it whatever our range is.
_RESERVED_PORTS = frozenset({25672, 5432, 5672})
_handed_out: set[int] = set()

SCRATCH_PREFIX = "convection-private-"
_OWNER_FILE = ".owner-pid"


def free_port() -> int:
    """Return a loopback TCP port nobody is bound to, never the same twice in this process."""
    for _ in range(500):
        port = random.randrange(*_PORT_RANGE)
        if port in _handed_out or port in _RESERVED_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # No SO_REUSEADDR: a port still in TIME_WAIT must count as taken, because the
            # server we start on it may not set the option either.
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Block until host:port accepts connections; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not port_open(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.05)


async def await_port(port: int, within: float = 30.0, host: str = "127.0.0.1") -> None:
    """Async `wait_port`: polls without blocking the event loop."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(port_open, port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {within}s")
        await asyncio.sleep(0.05)


def process_state(pid: int) -> str:
    """The one-letter state of a process from /proc (R, S, T, Z, ...), "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def freeze(pid: int, *, group: bool = False) -> None:
    """SIGSTOP a process (or its whole process group): it holds its sockets but answers nothing.

    Returns once the process is stopped: the signal is delivered asynchronously, and a test
    acting right after `freeze` must not race a process that is still running.
    """
    (os.killpg if group else os.kill)(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while process_state(pid) not in ("T", "t", "Z", ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not stop after SIGSTOP")
        time.sleep(0.005)


def thaw(pid: int, *, group: bool = False) -> None:
    """SIGCONT what `freeze` stopped."""
    (os.killpg if group else os.kill)(pid, signal.SIGCONT)


def _exited(proc: Path, state: str) -> bool:
    # A zombie thread-group leader may still have threads tearing down, and they keep the
    # process's sockets open: beam.smp's listeners outlive its SIGKILLed main thread briefly.
    if state != "Z":
        return False
    try:
        return sum(1 for _ in (proc / "task").iterdir()) <= 1
    except OSError:
        return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group pgid is still running (zombies that hold nothing aside)."""
    # killpg(pgid, 0) also counts zombies nobody reaps (orphaned children of a killed leader
    # wait for PID 1), so read the states instead.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and not _exited(stat.parent, fields[0]):
                return True
    return False


def wait_ports_closed(ports: Iterable[int], timeout: float = 10.0) -> None:
    """Block until nothing listens on any of `ports` any more."""
    deadline = time.monotonic() + timeout
    while busy := [port for port in ports if port_open(port)]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ports {busy} still listening after {timeout}s")
        time.sleep(0.02)


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL a whole process group (thawing it first) and wait until it is gone."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process group {pgid} survived SIGKILL for {timeout}s")
        time.sleep(0.02)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log at {path}: {exc}>"


def as_user(name: str) -> dict[str, Any]:
    """`subprocess` keyword arguments that run a child as OS user `name` (we may be root)."""
    entry = pwd.getpwnam(name)
    if os.geteuid() == entry.pw_uid:
        return {}
    if os.geteuid() != 0:
        raise PermissionError(f"must run as root or as {name} to start a private server")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans() -> None:
    """Kill servers and remove folders left behind by a test process that died without cleanup.

    A private server runs in its own session, so a pytest killed by SIGKILL leaves it running;
    its scratch folder records the owning pid, and the server's command line names the folder.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            owner = int((folder / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        marker = str(folder).encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError, ProcessLookupError):
                if marker in cmdline.read_bytes():
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def scratch_dir(kind: str, owner: str | None = None) -> Path:
    """A fresh temporary folder marked with our pid, optionally handed to OS user `owner`."""
    reap_orphans()
    folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-"))
    (folder / _OWNER_FILE).write_text(str(os.getpid()))
    if owner is not None and os.geteuid() == 0:
        shutil.chown(folder, owner, owner)
    return folder
