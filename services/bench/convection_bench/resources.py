"""A fresh PostgreSQL database and a fresh RabbitMQ vhost per system, dropped afterwards.

A vhost is made with `rabbitmqctl` when the broker is on this machine, else through the
management API; when neither works the system runs in the vhost of `--amqp-url`, with a note.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aiohttp
import asyncpg

from convection_bench.system import BenchError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts for which the local `rabbitmqctl` manages the broker of the URL."""


def libpq_url(url: str) -> str:
    """Return a PostgreSQL URL in the form asyncpg and libpq take (no `+driver`)."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith(("postgresql", "postgres")):
        return f"postgresql://{rest}"
    raise BenchError(f"not a PostgreSQL URL: {redact(url)!r}: pass --db-url postgresql://...")


def redact(url: str) -> str:
    """Return `url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_path(url: str, path: str) -> str:
    """Return `url` naming another database or vhost (`path`, not yet quoted)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(path, safe="")))


async def _admin(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(libpq_url(url), timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"PostgreSQL not reachable at {redact(url)}: {exc}: start it, or pass a --db-url "
            "naming a server and an existing database (the bench creates its own beside it)"
        ) from exc


@asynccontextmanager
async def fresh_database(base_url: str, prefix: str) -> AsyncIterator[str]:
    """Create a database on the server of `base_url`; yield its URL; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await _admin(base_url)
    try:
        # Inside the try whose finally drops it: a signal during CREATE DATABASE (the bench
        # stopping) must not leave a database behind.
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.PostgresError as exc:
            user = urlsplit(base_url).username or "the default user"
            raise BenchError(
                f"cannot create a database as {user} on {redact(base_url)}: {exc}: pass a "
                "--db-url whose user may CREATE DATABASE"
            ) from exc
        finally:
            await admin.close()
        yield with_path(libpq_url(base_url), name)
    finally:
        admin = await _admin(base_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def check_broker(url: str) -> None:
    """Connect once to `url`, or raise a BenchError that says what to do."""
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise BenchError(
            f"RabbitMQ not reachable at {redact(url)}: {exc!r}: start it or pass --amqp-url"
        ) from exc
    await connection.close()


async def _rabbitmqctl(*args: str) -> bool:
    exe = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin")
    if exe is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        exe, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        return await asyncio.wait_for(proc.wait(), 60) == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False
    except BaseException:
        # Cancelled (the bench stopping): the command does not outlive it.
        proc.kill()
        await proc.wait()
        raise


async def _management(url: str, method: str, path: str, body: object = None) -> bool:
    parts = urlsplit(url)
    auth = aiohttp.BasicAuth(unquote(parts.username or "guest"), unquote(parts.password or ""))
    api = f"http://{parts.hostname or 'localhost'}:15672/api/{path}"
    try:
        async with (
            aiohttp.ClientSession(auth=auth, timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.request(method, api, json=body) as resp,
        ):
            return resp.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _create_vhost(url: str, vhost: str) -> Callable[[], Awaitable[bool]] | None:
    user = unquote(urlsplit(url).username or "guest")
    if (urlsplit(url).hostname or "localhost") in LOCAL_HOSTS and await _rabbitmqctl(
        "add_vhost", vhost
    ):
        await _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return lambda: _rabbitmqctl("delete_vhost", vhost)
    quoted = quote(vhost, safe="")
    if await _management(url, "PUT", f"vhosts/{quoted}"):
        grant = {"configure": ".*", "write": ".*", "read": ".*"}
        await _management(url, "PUT", f"permissions/{quoted}/{quote(user, safe='')}", grant)
        return lambda: _management(url, "DELETE", f"vhosts/{quoted}")
    return None


@asynccontextmanager
async def fresh_vhost(
    base_url: str, prefix: str, note: Callable[[str], None]
) -> AsyncIterator[str]:
    """Create a vhost on the broker of `base_url` if possible; yield its URL; delete it after."""
    await check_broker(base_url)
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        delete = await _create_vhost(base_url, vhost)
    except BaseException:
        # Stopped halfway: the vhost may exist already; deleting a missing one is harmless.
        await _rabbitmqctl("delete_vhost", vhost)
        await _management(base_url, "DELETE", f"vhosts/{quote(vhost, safe='')}")
        raise
    if delete is None:
        note(
            "could not create a vhost (no local rabbitmqctl, no management API): running in "
            f"the vhost of {redact(base_url)}; leftovers there may disturb the figures"
        )
        yield base_url
        return
    try:
        yield with_path(base_url, vhost)
    finally:
        await delete()
