"""A private RabbitMQ node; see `tests.faults.private` for the design."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import string
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

import aio_pika

from tests.faults._procs import free_port, port_open
from tests.faults._server import PrivateServer, ServerFailed

RABBIT_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def epmd_names(port: int = 4369) -> list[str]:
    """Short names of the Erlang nodes registered with the local epmd (NAMES_REQ)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x00\x01n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    # 4 bytes of epmd's own port, then one "name NAME at port N" line per node.
    return [line.split()[1] for line in reply[4:].decode().splitlines() if line.startswith("name ")]


def _check_login(url: str, timeout: float) -> None:
    """Open and close one AMQP connection, from a thread of its own.

    `start()` is synchronous but is often called from inside a running event loop (async
    tests), where `asyncio.run` is refused; a fresh thread has no loop yet.
    """
    failure: list[BaseException] = []

    async def login() -> None:
        connection = await aio_pika.connect(url, timeout=timeout)
        await connection.close()

    def run() -> None:
        try:
            asyncio.run(login())
        except BaseException as exc:  # handed back to the calling thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="rabbit-login-check")
    worker.start()
    worker.join(timeout + 5)
    if failure:
        raise failure[0]


class PrivateRabbit(PrivateServer):
    """A throw-away single RabbitMQ node on 127.0.0.1 and free ports, owned by one test.

    Args:
        config: extra rabbitmq.conf lines (key -> value), e.g. {"loopback_users": "none"}.
        memory_limit: `vm_memory_high_watermark.absolute`: publishers are blocked above it.
    """

    kind = "rabbit"
    os_user = "rabbitmq"

    def __init__(
        self, *, config: Mapping[str, str] | None = None, memory_limit: str = "1GB"
    ) -> None:
        super().__init__()
        self.node = f"convection-test-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = self.root / "home"
        self.config: dict[str, str] = {
            "listeners.tcp.local": f"127.0.0.1:{self.port}",
            "vm_memory_high_watermark.absolute": memory_limit,
            # Test machines have small disks; the default 50MB limit is the same, but say it so a
            # later default change cannot turn publishers off in the middle of a test.
            "disk_free_limit.absolute": "50MB",
            # Quorum queues hold recent entries in memory until their write-ahead log rolls over
            # at this size (512MB by default).
            "raft.wal_max_size_bytes": str(64 * 1024 * 1024),
            "log.console": "false",
            "log.file.level": "info",
            **(config or {}),
        }
        self._layout()
        self.env = self._environment()

    def _layout(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.root / sub).mkdir()
        (self.root / "rabbitmq.conf").write_text(
            "".join(f"{key} = {value}\n" for key, value in self.config.items())
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        # Erlang refuses a cookie file that others can read; every CLI call we make runs with
        # this HOME, so node and rabbitmqctl agree without `--erlang-cookie` on each command.
        cookie = self.home / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        cookie.chmod(0o400)
        if os.geteuid() == 0:
            owner = self.root.stat()
            for path in [*self.root.rglob("*")]:
                os.chown(path, owner.st_uid, owner.st_gid)

    def _environment(self) -> dict[str, str]:
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.home),
            # /etc/rabbitmq/rabbitmq-env.conf would set NODENAME=rabbit@localhost: never read it.
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # Without extension: 3.10 adds ".conf" itself (checked: the boot banner lists
            # <root>/rabbitmq.conf); a path ending in .conf is accepted too.
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "beam.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
        }

    @property
    def ports(self) -> list[int]:
        """AMQP and Erlang distribution ports."""
        return [self.port, self.dist_port]

    def _released(self, timeout: float) -> None:
        super()._released(timeout)
        # epmd drops a dead node's name only when it notices the closed connection; a start
        # before that fails to register the name and never boots.
        short = self.node.split("@", 1)[0]
        deadline = time.monotonic() + timeout
        while short in epmd_names():
            if time.monotonic() > deadline:
                raise ServerFailed(f"epmd still lists {short} {timeout}s after it stopped")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        """AMQP URL for guest on vhost "/" (guest may log in from loopback only: we are)."""
        return self.url_for("guest", "guest", "/")

    def url_for(self, user: str, password: str, vhost: str = "/") -> str:
        """AMQP URL of `user` on `vhost` of this node."""
        return (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(vhost, safe='')}"
        )

    @property
    def beam_pid(self) -> int:
        """Pid of the Erlang VM itself (our spawned process is the rabbitmq-server script)."""
        return int((self.root / "beam.pid").read_text().strip())

    @property
    def log_file(self) -> Path:
        """The node's own log (the spawned script's output is in `log_path`)."""
        return self.root / "log" / f"{self.node}.log"

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n NODE *args` against this node; return its output.

        The /usr/sbin wrapper would `su` to rabbitmq with HOME=/var/lib/rabbitmq, i.e. with the
        shared node's cookie: call the script behind it, with our own environment.
        """
        argv = [str(RABBIT_SCRIPTS / "rabbitmqctl"), "-q", "-n", self.node, *args]
        return self._run(argv, self.env, timeout)

    def start(self, timeout: float = 90.0) -> None:
        """Start the node; return once it booted completely and guest can log in over AMQP."""
        began = time.monotonic()
        self._spawn([str(RABBIT_SCRIPTS / "rabbitmq-server")], self.env)
        deadline = time.monotonic() + timeout
        # Polling the port is cheap; each rabbitmqctl call costs a second of CPU for the CLI's
        # own Erlang VM, so ask it only once the listener (one of the last boot steps) is up.
        while not port_open(self.port):
            if not self.running:
                code = self.process.returncode if self.process else "?"
                raise self._fail(f"node exited with {code} while booting")
            if time.monotonic() > deadline:
                self.kill()
                raise self._fail(f"AMQP port {self.port} closed after {timeout}s")
            time.sleep(0.1)
        try:
            self.rabbitmqctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout)
            _check_login(self.url, timeout=10)
        except Exception as exc:
            self.kill()
            raise self._fail(f"booted but unusable: {exc}") from exc
        self.start_seconds.append(time.monotonic() - began)

    def stop(self, mode: str = "graceful", timeout: float = 60.0) -> None:
        """Stop the node with `rabbitmqctl stop` and wait until its processes are gone."""
        if (mode or "graceful") != "graceful":
            raise ValueError("a RabbitMQ node stops 'graceful' (or use mode 'kill')")
        if not self.running:
            return
        self.thaw()
        self.rabbitmqctl("stop", timeout=timeout)
        self._wait_exit(timeout)

    def flush_metadata(self) -> None:
        """Write RabbitMQ's buffered Ra metadata (dets tables) to disk now.

        RabbitMQ 3.10 keeps the registry of Ra servers and their term/vote in dets tables that
        reach the disk only after 0.5s/5s of quiet. A node SIGKILLed within that window after a
        quorum queue is declared restarts without the queue's Ra server: the queue stays
        "leader not known" forever and its confirmed messages are unreachable.
        """
        self.rabbitmqctl("eval", "[dets:sync(T) || T <- dets:all()], ok.", timeout=15)

    def kill(self, *, flush_metadata: bool = True) -> None:
        """SIGKILL the node (all its processes), as a crash would.

        Args:
            flush_metadata: first `flush_metadata()` (skipped while frozen), so the test is
                about confirmed messages surviving a crash, not about the 3.10 window above.
                Pass False for a raw crash at this very instant.
        """
        if flush_metadata and self.running and not self.frozen:
            self.flush_metadata()
        self._sigkill()

    def close_connections(self, reason: str = "test") -> None:
        """Close every client connection to the node (as an operator or a failover would)."""
        self.rabbitmqctl("close_all_connections", reason)

    def add_vhost(self, name: str) -> str:
        """Create vhost `name`, give guest full rights on it; return guest's URL for it."""
        self.rabbitmqctl("add_vhost", name)
        self.set_permissions(name, "guest", ".*", ".*", ".*")
        return self.url_for("guest", "guest", name)

    def add_user(self, name: str, password: str, tags: Iterable[str] = ()) -> None:
        """Create user `name` (no permissions yet) with optional tags, e.g. ("administrator",)."""
        self.rabbitmqctl("add_user", name, password)
        if tags := list(tags):
            self.rabbitmqctl("set_user_tags", name, *tags)

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        """Set `user`'s configure/write/read regexes on `vhost` (rabbitmqctl's order)."""
        self.rabbitmqctl("set_permissions", "-p", vhost, user, configure, write, read)
